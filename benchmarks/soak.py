"""Soak: the agent at full rate on a looping folder while the broker restarts periodically.

Passes when resident memory grows < 5 % after warm-up, no result is lost (every seq up to the last one
reaches the subscriber, re-deliveries allowed) and throughput stays stable. Bounded in time; run longer on a
box with --seconds.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.devtools.broker import PrivateBroker
from edge_agent.devtools.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def every_seq_arrived(subscriber: Subscriber) -> bool:
    """Every seq up to the last one seen has reached the subscriber (re-deliveries allowed)."""
    seqs = subscriber.unique_seqs()
    return bool(seqs) and len(seqs) >= seqs[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--restart-every", type=float, default=45)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        import cv2
        import numpy as np

        from edge_agent.data.synth import CLASSES, render

        rng = np.random.default_rng(0)
        frames = work / "frames"
        frames.mkdir()
        for i in range(200):
            cv2.imwrite(str(frames / f"{i:04d}.png"), render(rng, 128, CLASSES[i % 5]))
        broker = PrivateBroker(work / "broker").start()
        if broker.kind != "mosquitto":
            print("soak needs Mosquitto (restarts keep sessions)")
            return 1
        config = work / "agent.toml"
        config.write_text(
            f'[station]\nid = "soak"\n[camera]\nsource = "dir:{frames}"\nloop = true\n[model]\npath = "{args.bundle}"\n'
            f'[mqtt]\nport = {broker.port}\nstats_interval_s = 5\n[spool]\npath = "{work / "spool.db"}"\n'
            '[archive]\nsave = "none"\n[health]\nport = 0\n'
        )
        subscriber = Subscriber(broker.port, "edge-agent/soak").start()
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "-q", "run", "--config", str(config)])
        started = time.monotonic()
        samples: list[tuple[float, int, int]] = []
        next_restart = started + args.restart_every
        restarts = 0
        while time.monotonic() - started < args.seconds:
            time.sleep(1)
            now = time.monotonic()
            samples.append((now - started, rss_kib(agent.pid), len(subscriber.results)))
            if now >= next_restart:
                broker.restart(down_for=2)
                restarts += 1
                next_restart = now + args.restart_every
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        subscriber.wait_for(every_seq_arrived, timeout=30)
        subscriber.stop()
        broker.stop()
    seqs = subscriber.unique_seqs()
    missing = (seqs[-1] - len(seqs)) if seqs else -1
    warm = [rss for t, rss, _ in samples if t >= args.warmup]
    growth = (warm[-1] - warm[0]) / warm[0] if len(warm) > 1 else 0.0
    windows = [b[2] - a[2] for a, b in zip(samples[::10], samples[10::10], strict=False)]
    steady = [w for w in windows if w > 0]
    print(
        f"{args.seconds:.0f} s, {restarts} broker restarts, {len(seqs)} results delivered (last seq {seqs[-1]}), "
        f"missing {missing}"
    )
    print(f"RSS after warm-up {warm[0] / 1024:.0f} MiB -> {warm[-1] / 1024:.0f} MiB ({growth:+.1%})")
    if steady:
        print(f"results per 10 s: median {statistics.median(steady):.0f}, min {min(steady)}, max {max(steady)}")
    ok = missing == 0 and growth < 0.05
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
