"""The daemon side must import and run with no torch installed."""

import subprocess
import sys

BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            raise ImportError("torch is blocked in this test")
        return None
sys.meta_path.insert(0, _Block())
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=120)


def test_daemon_modules_import_without_torch():
    result = run_blocked(
        "import edge_agent.cli, edge_agent.runtime.inspector, edge_agent.runtime.backends.onnxruntime\n"
        "import edge_agent.agent.daemon, edge_agent.settings, edge_agent.publish.spool\n"
        "import edge_agent.capture.sources\n"
        "assert 'torch' not in sys.modules\nprint('ok')"
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_predict_runs_without_torch(tiny_bundle, tiny_data):
    image = next((tiny_data / "test" / "pit").glob("*.png"))
    result = run_blocked(
        "from edge_agent.cli import main\n"
        f"raise SystemExit(main(['predict', {str(tiny_bundle)!r}, {str(image)!r}, '--json']))"
    )
    assert result.returncode == 0, result.stderr
    assert '"verdict"' in result.stdout


def test_trainer_without_torch_names_the_extra():
    result = run_blocked(
        "from edge_agent.cli import main\nraise SystemExit(main(['trainer', 'distill', 'x', '--out', 'y']))"
    )
    assert result.returncode == 2
    assert "edge-inspection-agent[trainer]" in result.stderr
    assert "edge-agent[" not in result.stderr, "that distribution on the public index is someone else's"
