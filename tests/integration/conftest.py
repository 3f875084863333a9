"""Real processes against a real broker: a private Mosquitto (amqtt where Mosquitto is absent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.devtools.broker import PrivateBroker, free_port
from edge_agent.devtools.subscriber import Subscriber


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    with PrivateBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def mosquitto_broker(broker: PrivateBroker) -> PrivateBroker:
    if broker.kind != "mosquitto":
        pytest.skip("restarting a broker with its sessions needs Mosquitto (amqtt keeps none)")
    return broker


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def agent_config(tmp_path: Path, tiny_bundle: Path):
    """Write an agent.toml for a private broker; sections given by the test override the defaults."""

    def make(broker: PrivateBroker | None, source: str, port: int | None = None, **overrides: dict[str, Any]) -> Path:
        sections: dict[str, dict[str, Any]] = {
            "station": {"id": "it"},
            "camera": {"source": source},
            "model": {"path": str(tiny_bundle)},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port or (broker.port if broker else free_port()),
                "protocol": broker.protocol if broker else "5",
                "stats_interval_s": 1,
            },
            "spool": {"path": str(tmp_path / "spool.db"), "sync": "normal"},
            "archive": {"path": str(tmp_path / "archive"), "save": "none"},
            "health": {"port": 0},
        }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        return write_config(tmp_path / "agent.toml", sections)

    return make


def start_agent(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", *extra, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"agent did not finish within {timeout} s:\n{out}")
    return process.returncode, out


@pytest.fixture
def subscriber_for():
    started: list[Subscriber] = []

    def make(broker: PrivateBroker, prefix: str = "edge-agent/it") -> Subscriber:
        sub = Subscriber(broker.port, prefix, broker.protocol).start()
        started.append(sub)
        return sub

    yield make
    for sub in started:
        sub.stop()


def image_folder(source: Path, target: Path, count: int) -> Path:
    """A flat folder of `count` real PNGs (cycled from the synthetic data set), sorted by name."""
    images = sorted(source.rglob("*.png"))
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (target / f"{i:05d}.png").write_bytes(images[i % len(images)].read_bytes())
    return target
