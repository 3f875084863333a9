"""TLS with a CA made in the test, username/password, a wrong password (no hot loop, never logged)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from edge_agent.devtools.broker import PrivateBroker
from edge_agent.devtools.subscriber import Subscriber

from .conftest import finish, image_folder, start_agent

pytestmark = [pytest.mark.broker, pytest.mark.slow]
PASSWORD = "correct-horse-battery-staple"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def secure_broker(tmp_path: Path):
    if not PrivateBroker().kind == "mosquitto":
        pytest.skip("TLS and password files are tested against Mosquitto")
    pki = tmp_path / "pki"
    pki.mkdir()
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=edge-agent test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=pki,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=pki,
    )
    (pki / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=pki,
    )
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "line1", PASSWORD], check=True)
    conf = (
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        f"allow_anonymous false\npassword_file {pki / 'passwd'}\n"
    )
    broker = PrivateBroker(tmp_path / "broker", extra_conf=conf).start()
    yield broker, pki
    broker.stop()


def test_tls_and_password(secure_broker, agent_config, tiny_data, tmp_path):
    broker, pki = secure_broker
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    folder = image_folder(tiny_data, tmp_path / "frames", 8)
    subscriber = Subscriber(
        broker.port, "edge-agent/it", ca_file=str(pki / "ca.crt"), username="line1", password=PASSWORD
    ).start()
    config = agent_config(
        broker,
        f"dir:{folder}",
        mqtt={"tls": True, "ca_file": str(pki / "ca.crt"), "username": "line1", "password_file": str(tmp_path / "pw")},
    )
    code, out = finish(start_agent(config))
    assert code == 0, out
    assert subscriber.wait_for(lambda s: len(s.results) == 8, timeout=10)
    subscriber.stop()
    assert PASSWORD not in out


def test_wrong_password_retries_with_backoff_and_never_logs_it(secure_broker, agent_config, tiny_data, tmp_path):
    broker, pki = secure_broker
    wrong = "wrong-password-123"
    (tmp_path / "pw").write_text(wrong)
    folder = image_folder(tiny_data, tmp_path / "frames", 5)
    config = agent_config(
        broker,
        f"dir:{folder}",
        camera={"loop": True, "fps": 10},
        mqtt={"tls": True, "ca_file": str(pki / "ca.crt"), "username": "line1", "password_file": str(tmp_path / "pw")},
        spool={"drain_timeout_s": 1},
        health={"port": 0},
    )
    process = start_agent(config, "--debug")
    time.sleep(6)
    process.send_signal(signal.SIGTERM)
    code, out = finish(process, timeout=30)
    assert code == 0, out
    refusals = out.count("refused the connection")
    assert 1 <= refusals <= 6, out  # back-off between attempts, not a hot loop
    assert wrong not in out
    assert "left in the spool" in out  # inspection went on; results kept for later


def test_tls_with_an_untrusted_ca_never_connects(secure_broker, agent_config, tiny_data, tmp_path):
    """Valid credentials, but the broker's certificate is signed by a CA the agent was not told to trust
    (no ca_file: the system store): the TLS handshake must fail — not authentication, which would also
    fail a client that skipped certificate checks."""
    broker, _ = secure_broker
    (tmp_path / "pw").write_text(PASSWORD)
    folder = image_folder(tiny_data, tmp_path / "frames", 3)
    config = agent_config(
        broker,
        f"dir:{folder}",
        mqtt={"tls": True, "username": "line1", "password_file": str(tmp_path / "pw")},
        spool={"drain_timeout_s": 2},
    )
    code, out = finish(start_agent(config))
    assert code == 0, out
    assert "MQTT connected" not in out
    assert "refused the connection" not in out, "it got as far as authentication: the certificate was not checked"
    assert "TLS certificate not trusted" in out
    assert "3 left in the spool" in out


def test_doctor_makes_a_real_mqtt_connect_with_tls_and_credentials_and_writes_nothing(
    secure_broker, agent_config, tiny_data, tmp_path
):
    from edge_agent.agent.doctor import run_doctor

    broker, pki = secure_broker
    folder = image_folder(tiny_data, tmp_path / "frames", 2)
    outcomes = {}
    for password in (PASSWORD, "wrong-password"):
        (tmp_path / "pw").write_text(password)
        config = agent_config(
            broker,
            f"dir:{folder}",
            mqtt={
                "tls": True,
                "ca_file": str(pki / "ca.crt"),
                "username": "line1",
                "password_file": str(tmp_path / "pw"),
            },
            spool={"path": str(tmp_path / "state" / "spool.db")},
            archive={"path": str(tmp_path / "state" / "archive"), "save": "all"},
        )
        lines: list[str] = []
        outcomes[password] = (run_doctor(config, echo=lines.append), "\n".join(lines))
    _, ok_text = outcomes[PASSWORD]
    assert "accepted an MQTT 5 CONNECT" in ok_text, ok_text
    bad_code, bad_text = outcomes["wrong-password"]
    assert bad_code == 1
    assert "refused the connection" in bad_text
    assert "wrong-password" not in bad_text
    assert not (tmp_path / "state").exists(), "doctor changed something on disk"
