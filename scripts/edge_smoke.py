"""Edge-only smoke test: in a venv with the core install (no trainer extra, no torch), `predict` and `run`
work on the bundle shipped in models/demo. CI runs it with that venv's python.

    python3 -m venv .venv-edge && .venv-edge/bin/pip install . && .venv-edge/bin/python scripts/edge_smoke.py
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edge_agent.data.synth import CLASSES, render
from edge_agent.devtools.broker import PrivateBroker
from edge_agent.devtools.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "demo"


def edge_agent_command() -> list[str]:
    script = Path(sys.executable).with_name("edge-agent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge_agent"]


def main() -> int:
    if importlib.util.find_spec("torch") is not None:
        print("edge smoke: torch is importable here; run this in a venv with the core install only")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frames = work / "frames"
        frames.mkdir()
        rng = np.random.default_rng(0)
        for i in range(10):
            cv2.imwrite(str(frames / f"{i:03d}.png"), render(rng, 128, CLASSES[i % len(CLASSES)]))
        predicted = subprocess.run(
            [*edge_agent_command(), "predict", str(BUNDLE), str(frames), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [json.loads(line) for line in predicted.stdout.splitlines()]
        if predicted.returncode != 0 or len(lines) != 10 or any(r["verdict"] not in ("pass", "fail") for r in lines):
            print(f"edge smoke: predict failed ({predicted.returncode}):\n{predicted.stdout}\n{predicted.stderr}")
            return 1
        print(f"edge smoke: predict gave {len(lines)} verdicts without torch")
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            print("edge smoke: no Mosquitto here; `run` not exercised")
            return 0
        with PrivateBroker(work / "broker") as broker:
            sub = Subscriber(broker.port, "edge-agent/smoke").start()
            config = work / "agent.toml"
            config.write_text(
                f'[station]\nid = "smoke"\n[camera]\nsource = "dir:{frames}"\n[model]\npath = "{BUNDLE}"\n'
                f'[mqtt]\nport = {broker.port}\n[spool]\npath = "{work / "spool.db"}"\n'
                f'[archive]\nsave = "none"\n[health]\nport = 0\n'
            )
            run = subprocess.run(
                [*edge_agent_command(), "run", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            got = sub.wait_for(lambda s: len(s.results) >= 10, timeout=20)
            sub.stop()
        if run.returncode != 0 or not got:
            print(f"edge smoke: run failed ({run.returncode}, {len(sub.results)} results):\n{run.stderr[-3000:]}")
            return 1
        print(f"edge smoke: run delivered {len(sub.results)} results over MQTT without torch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
