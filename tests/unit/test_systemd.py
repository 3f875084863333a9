"""The unit must pass `systemd-analyze verify` and score <= 2.5 in `systemd-analyze security`."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "systemd" / "edge-agent.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this machine")


@pytest.fixture
def unit_copy(tmp_path):
    # verify checks that ExecStart exists: point it at this venv's console script.
    executable = Path(sys.executable).with_name("edge-agent")
    text = UNIT.read_text().replace("/opt/edge-agent/venv/bin/edge-agent", str(executable))
    path = tmp_path / "edge-agent.service"
    path.write_text(text)
    return path


def test_unit_verifies_clean(unit_copy):
    result = subprocess.run([ANALYZE, "verify", str(unit_copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines() if "edge-agent.service" in line]
    assert complaints == []


def test_unit_exposure_is_low(unit_copy):
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(unit_copy)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= 2.5


def test_unit_keeps_what_the_agent_needs():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "StateDirectory=edge-agent",
        "CacheDirectory=edge-agent",
        "ConfigurationDirectory=edge-agent",
        "LoadCredential=mqtt-password:",
        "TimeoutStartSec=900",
        "SupplementaryGroups=video render",
    ):
        assert line in text, line
    assert "PrivateDevices=yes" not in text  # it would hide the GPU
