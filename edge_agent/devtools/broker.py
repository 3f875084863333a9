"""A private MQTT broker on a free port: Mosquitto where installed, else amqtt (pip) as a fallback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker on port {port} did not start within {timeout} s")


class PrivateBroker:
    """Start/stop/restart a broker that keeps its port (and, for Mosquitto, its sessions) across restarts."""

    def __init__(
        self, workdir: Path | None = None, port: int | None = None, extra_conf: str = "", prefer: str = "mosquitto"
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        self.kind = "mosquitto" if mosquitto and prefer == "mosquitto" else "amqtt"
        self._mosquitto = mosquitto
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def protocol(self) -> str:
        """amqtt speaks MQTT 3.1.1 only."""
        return "5" if self.kind == "mosquitto" else "3.1.1"

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\n"
                + ("allow_anonymous true\n" if "allow_anonymous" not in self.extra_conf else "")
                + f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
                + f"log_dest file {self.workdir}/mosquitto.log\n"
                # As root, Mosquitto drops to user 'mosquitto', who cannot read our private temp files.
                + ("user root\n" if os.geteuid() == 0 else "")
                + self.extra_conf
            )
            return [str(self._mosquitto), "-c", str(conf)]
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        )
        return [str(Path(sys.executable).with_name("amqtt")), "-c", str(conf)]

    def start(self) -> PrivateBroker:
        log = (self.workdir / f"{self.kind}.out").open("ab")
        self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def send_signal(self, sig: int) -> None:
        """SIGHUP makes Mosquitto re-read its ACL and password files; SIGSTOP/SIGCONT freeze and thaw it
        (a broker that holds the TCP connection but answers nothing, as a hung one does)."""
        if self._process is None:
            raise RuntimeError("broker not running")
        self._process.send_signal(sig)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
