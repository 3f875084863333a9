"""`make demo`: real photographs with defects → distil → bundle → private broker → agent → MES subscriber → summary.

Everything runs through the real CLI, as a user would run it; outputs go to demo-out/.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.devtools.broker import PrivateBroker
from edge_agent.devtools.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "edge_agent"]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


EXIT_GATE = 3  # distill wrote its bundle but it missed a quality gate


def run(*args: str, allowed: tuple[int, ...] = (0,)) -> int:
    print("$ edge-agent " + " ".join(args), flush=True)
    code = subprocess.run([*CLI, *args], check=False).returncode
    if code not in allowed:
        raise SystemExit(f"demo: edge-agent {args[0]} failed with exit code {code}")
    return code


def copy_flat(images: list[Path], target: Path, prefix: str) -> dict[str, Path]:
    """`images` copied, in order, into a fresh flat folder as PREFIX_NNNN.png; returns new name → source."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = {}
    for i, path in enumerate(images):
        name = f"{prefix}_{i:04d}.png"
        shutil.copyfile(path, target / name)
        copied[name] = path
    return copied


def stream_folder(data: Path, target: Path, seed: int) -> dict[str, str]:
    """The test split as one flat folder, shuffled, each file's true class kept aside (like a labelled run)."""
    images = sorted((data / "test").glob("*/*.png"))
    random.Random(seed).shuffle(images)
    return {name: source.parent.name for name, source in copy_flat(images, target, "part").items()}


def unlabeled_folder(source: Path, target: Path) -> int:
    """Every image of a second data set in one flat folder without labels: what a plant has plenty of
    (frames from the line nobody sorted), and what the teacher labels for the student (--unlabeled)."""
    frames = copy_flat(sorted(source.glob("*/*/*.png")), target, "frame")
    shutil.rmtree(source)
    return len(frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "demo-out")
    parser.add_argument("--per-class", type=int, default=100, help="labelled training images per class")
    parser.add_argument("--unlabeled-per-class", type=int, default=100, help="of the unlabelled frames (0: none)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    step("1/5 real photographs (brick, gravel) with scratches, cracks, stains and pits from defect-synthesis")
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    size = ("--image-size", str(args.image_size))
    run("trainer", "photos", str(data), "--per-class", str(args.per_class), *size)
    unlabeled: list[str] = []
    if args.unlabeled_per_class:
        frames, drawn = out / "unlabeled", out / "unlabeled.tmp"
        run("trainer", "photos", str(drawn), "--per-class", str(args.unlabeled_per_class), "--seed", "1", *size)
        print(f"{unlabeled_folder(drawn, frames)} unlabelled frames in {frames}", flush=True)
        unlabeled = ["--unlabeled", str(frames)]

    # The default student (MobileNetV3-Small) from a ResNet-18 teacher: the recipe a user gets, in minutes.
    step("2/5 distil: ResNet-18 teacher → MobileNetV3-Small student (+ the same student alone, for comparison)")
    bundle = out / "bundle"
    gate = run(
        "trainer",
        "distill",
        str(data),
        "--out",
        str(bundle),
        "--teacher-arch",
        "resnet18",
        "--student-arch",
        "mobilenet_v3_small",
        # At 64 px torchvision's stride-2 stem already meets the bar (90.9 %) in half the student's time; the
        # full-resolution stem (the default) is what 128 px parts need (docs/benchmarks.md, the student's stem).
        "--student-stem-stride",
        "2",
        "--teacher-epochs",
        str(args.teacher_epochs),
        "--epochs",
        str(args.epochs),
        "--image-size",
        str(args.image_size),
        "--baseline",
        *unlabeled,
        "--ship",
        "best",
        "--max-escape",
        "0.05",
        # The bar a newcomer's first bundle is held to (and a line would be): say so, loudly, when missed.
        "--fail-under",
        "0.85",
        "--max-overkill",
        "0.10",
        "--no-progress",
        allowed=(0, EXIT_GATE),
    )
    if gate == EXIT_GATE:
        print(
            "the gate fired (exit 3): this bundle missed the demo's bar (85 % accuracy, 10 % overkill); "
            "report.md says where; the demo goes on to show the rest of the pipeline with it",
            flush=True,
        )

    step("3/5 private MQTT broker")
    broker = PrivateBroker(out / "broker").start()
    print(f"{broker.kind} on 127.0.0.1:{broker.port} (MQTT {broker.protocol})")

    step("4/5 the agent inspects a folder of parts; an MES subscriber prints what it receives")
    truth = stream_folder(data, out / "line", seed=7)
    # A fresh station each demo: the spool remembers which files of a dir: source it inspected (so that a
    # restarted agent continues where it stopped) and would skip this run's parts, which reuse the names.
    for state in (out / "spool.db", out / "spool.db-wal", out / "spool.db-shm", out / "spool.db.seq"):
        state.unlink(missing_ok=True)
    config = out / "agent.toml"
    config.write_text(
        f'[station]\nid = "demo"\n[camera]\nsource = "dir:{out / "line"}"\n[model]\npath = "{bundle}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        f'[spool]\npath = "{out / "spool.db"}"\n[archive]\npath = "{out / "archive"}"\nsave = "fail"\n'
        "[health]\nport = 0\n"
    )

    def show(result: dict) -> None:
        name = result["source"]["name"]
        print(
            f"  seq {result['seq']:>4}  {name}  {result['verdict'].upper():4}  {result['label']:<8} "
            f"p={result['confidence']:.2f}  defect={result['defect_score']:.2f}  "
            f"{result['latency_ms']['total']:.1f} ms   (truth: {truth[name]})",
            flush=True,
        )

    subscriber = Subscriber(broker.port, "edge-agent/demo", broker.protocol, on_result=show).start()
    run("validate-config", str(config))
    print(f"$ edge-agent -q run --config {config}", flush=True)
    agent_started = time.monotonic()
    subprocess.run([*CLI, "-q", "run", "--config", str(config)], check=True)
    agent_seconds = time.monotonic() - agent_started
    subscriber.wait_for(lambda s: len(s.results) >= len(truth), timeout=15)
    subscriber.stop()
    broker.stop()

    step("5/5 summary")
    results = {r["source"]["name"]: r for r in subscriber.results}
    defects = [n for n, c in truth.items() if c != "good"]
    goods = [n for n, c in truth.items() if c == "good"]
    escapes = sum(1 for n in defects if results[n]["verdict"] == "pass")
    overkills = sum(1 for n in goods if results[n]["verdict"] == "fail")
    correct = sum(1 for n, c in truth.items() if results[n]["label"] == c)
    latencies = [r["latency_ms"]["total"] for r in results.values()]
    print(f"parts inspected   {len(results)} of {len(truth)} (results received by the MES subscriber)")
    print(
        f"verdicts          {sum(r['verdict'] == 'pass' for r in results.values())} pass, "
        f"{sum(r['verdict'] == 'fail' for r in results.values())} fail"
    )
    print(
        f"escape rate       {escapes / max(1, len(defects)):.1%}  ({escapes} of {len(defects)} defective parts passed)"
    )
    print(f"overkill rate     {overkills / max(1, len(goods)):.1%}  ({overkills} of {len(goods)} good parts failed)")
    print(f"label accuracy    {correct / len(truth):.1%}")
    print(
        f"throughput        {len(results) / agent_seconds:.0f} parts/s over the agent's whole run "
        f"(start-up included); capture→decision p50 {statistics.median(latencies):.1f} ms"
    )
    print(f"report            {bundle / 'report.md'} (escapes.png, overkill.png, scores.png, tradeoff.png beside it)")
    print(f"demo took {time.monotonic() - started:.0f} s")
    return 0 if len(results) == len(truth) else 1


if __name__ == "__main__":
    raise SystemExit(main())
