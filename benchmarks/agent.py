"""Agent benchmark: end-to-end throughput (folder and video file, real broker) against the slowest stage alone.

Stages measured alone in the same run: decoding (cv2 on the same files / the same video) and inference as
`bench` measures it (preprocessed batches through the backend). The agent's rate is taken from the first
to the last result the MES subscriber receives, so start-up and model loading are not counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge_agent.devtools.broker import PrivateBroker
from edge_agent.devtools.subscriber import Subscriber
from edge_agent.runtime.inspector import Inspector
from edge_agent.runtime.preprocess import decode_image_bytes, preprocess

ROOT = Path(__file__).resolve().parents[1]


def make_frames(work: Path, count: int, size: int) -> tuple[Path, Path]:
    from edge_agent.data.synth import CLASSES, render

    rng = np.random.default_rng(0)
    folder = work / "frames"
    folder.mkdir()
    video = work / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30, (size, size))
    for i in range(count):
        image = render(rng, size, CLASSES[i % len(CLASSES)])
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
        writer.write(image)
    writer.release()
    return folder, video


def decode_rate(source: str, count: int) -> float:
    started = time.perf_counter()
    if source.startswith("dir:"):
        for path in sorted(Path(source[4:]).iterdir()):
            decode_image_bytes(path.read_bytes())
    else:
        capture = cv2.VideoCapture(source)
        while capture.read()[0]:
            pass
        capture.release()
    return count / (time.perf_counter() - started)


def inference_rate(bundle: Path, size: int, batch: int, seconds: float = 5.0) -> float:
    inspector = Inspector.open(str(bundle), "onnxruntime", max_batch=batch)
    frames = [np.random.default_rng(i).integers(0, 255, (size, size, 3), dtype=np.uint8) for i in range(batch)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        inspector.probabilities(preprocess(frames, inspector.bundle.manifest.input))
        done += batch
    return done / (time.perf_counter() - started)


def run_agent(work: Path, broker: PrivateBroker, bundle: Path, source: str, count: int, sync: str) -> dict:
    prefix = f"bench/{int(time.time() * 1000)}"
    spool = work / f"spool-{time.monotonic_ns()}.db"
    config = work / "agent.toml"
    config.write_text(
        f'[station]\nid = "bench"\n[camera]\nsource = "{source}"\n[model]\npath = "{bundle}"\nbackend = "onnxruntime"\n'
        f'[mqtt]\nport = {broker.port}\nprotocol = "{broker.protocol}"\ntopic_prefix = "{prefix}"\n'
        f'[spool]\npath = "{spool}"\nsync = "{sync}"\n[archive]\nsave = "none"\n[health]\nport = 0\n'
    )
    subscriber = Subscriber(broker.port, prefix, broker.protocol).start()
    subprocess.run([sys.executable, "-m", "edge_agent", "-q", "run", "--config", str(config)], check=True)
    subscriber.wait_for(lambda s: len(s.arrivals) >= count, timeout=60)
    subscriber.stop()
    arrivals = list(zip(subscriber.arrivals, subscriber.results, strict=True))
    times = [t for t, _ in arrivals]
    latencies = []
    for arrived, result in arrivals:
        captured = dt.datetime.fromisoformat(result["ts"].replace("Z", "+00:00")).timestamp()
        latencies.append((arrived - captured) * 1000.0)
    return {
        "results": len(arrivals),
        "fps": (len(times) - 1) / (times[-1] - times[0]),
        "p50_ms": statistics.median(latencies),
        "p99_ms": float(np.percentile(latencies, 99)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--size", type=int, default=640, help="square frame size in pixels (640, a VGA-class camera)")
    parser.add_argument("--sync", default="full", choices=("full", "normal"), help="spool.sync")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, PrivateBroker(Path(tmp) / "broker") as broker:
        work = Path(tmp)
        folder, video = make_frames(work, args.frames, args.size)
        infer = inference_rate(args.bundle, args.size, batch=8)
        for label, source in (("folder of PNGs", f"dir:{folder}"), ("MJPG video file", str(video))):
            decode = decode_rate(source, args.frames)
            agent = run_agent(work, broker, args.bundle, source, args.frames, args.sync)
            slowest = min(decode, infer)
            rows.append(
                {
                    "source": label,
                    "decode_fps": decode,
                    "inference_fps": infer,
                    "agent_fps": agent["fps"],
                    "ratio": agent["fps"] / slowest,
                    "results": agent["results"],
                    "capture_to_mes_p50_ms": agent["p50_ms"],
                    "capture_to_mes_p99_ms": agent["p99_ms"],
                }
            )
            print(
                f"{label}: agent {agent['fps']:.0f} fps, decode alone {decode:.0f}, inference alone {infer:.0f} "
                f"-> {agent['fps'] / slowest:.2f}x of the slowest stage",
                flush=True,
            )
    print(f"\n{args.frames} frames of {args.size} px, spool sync={args.sync}, broker {broker.kind}\n")
    print("| source | decode alone | inference alone | agent end to end | agent / slowest | capture→MES p50 | p99 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['source']} | {r['decode_fps']:.0f}/s | {r['inference_fps']:.0f}/s | {r['agent_fps']:.0f}/s | "
            f"{r['ratio']:.2f}x | {r['capture_to_mes_p50_ms']:.1f} ms | {r['capture_to_mes_p99_ms']:.1f} ms |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
