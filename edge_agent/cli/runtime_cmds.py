"""`edge-agent predict` and `edge-agent bench`: the edge runtime from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from edge_agent.cli.arguments import BACKENDS, expand_images, positive_float, positive_int, unit_interval
from edge_agent.errors import BadInputError


def register(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="one verdict per image (same code path as the daemon)",
        description="Inspect image files with a bundle and print one verdict each.",
        epilog="examples:\n  edge-agent predict models/press7 part.png\n"
        "  edge-agent predict models/press7 parts/ 'line2/**/*.jpg' --json   # the MQTT result payload + path",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("model_dir", type=Path, help="bundle folder")
    predict.add_argument("images", nargs="+", help="image files, folders (their images, sorted) or globs ('*.png')")
    predict.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (auto)")
    predict.add_argument("--threshold", type=unit_interval, help="override the bundle's threshold (0..1)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line per image")
    predict.set_defaults(func=cmd_predict)

    bench = commands.add_parser(
        "bench",
        help="latency (p50, p99) and throughput of a backend",
        description="Warm up, then time the backend on random input of the bundle's size.",
    )
    bench.add_argument("model_dir", type=Path, help="bundle folder")
    bench.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (auto)")
    bench.add_argument("--batch", type=positive_int, nargs="+", default=[1, 8], help="batch sizes (1 8)")
    bench.add_argument("--seconds", type=positive_float, default=3.0, help="time per batch size, > 0 (3)")
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout")
    bench.set_defaults(func=cmd_bench)


def cmd_predict(args: argparse.Namespace) -> int:
    from edge_agent.agent.results import build_result
    from edge_agent.capture.sources import Frame
    from edge_agent.publish.payloads import ModelRef
    from edge_agent.runtime.inspector import Inspector
    from edge_agent.runtime.postprocess import Unjudged
    from edge_agent.runtime.preprocess import read_image

    paths = expand_images(args.images)  # before the model loads: a typo fails fast
    inspector = Inspector.open(str(args.model_dir), args.backend, args.threshold)
    failed = 0
    manifest = inspector.bundle.manifest
    model = ModelRef(name=manifest.name, version=manifest.version, sha256=inspector.bundle.model_sha256)
    for index, path in enumerate(paths):
        started, captured = time.perf_counter(), time.time()
        try:
            image = read_image(str(path))
        except BadInputError as e:
            _report_unjudged(path, str(e), args.json)
            failed += 1
            continue
        (verdict,), timing = inspector.inspect([image])
        if isinstance(verdict, Unjudged):
            # Fail closed, as the daemon does: no verdict for a frame the model could not judge.
            _report_unjudged(path, f"{path}: not judged: {verdict.reason}", args.json)
            failed += 1
            continue
        if args.json:
            # The same payload MES receives on <prefix>/result, plus the file it came from.
            frame = Frame(image, index, captured, str(path), path.name, captured=started)
            result = build_result(
                frame, verdict, station="predict", threshold=inspector.threshold, model=model,
                timing=timing, batch_size=1, image=None,
            )  # fmt: skip
            print(json.dumps({"path": str(path), **result.model_dump(mode="json", by_alias=True)}), flush=True)
        else:
            print(
                f"{path}: {verdict.verdict.upper():4}  {verdict.label} ({verdict.confidence:.1%})  "
                f"defect score {verdict.defect_score:.3f} / threshold {inspector.threshold:.3f}",
                flush=True,
            )
    inspector.close()
    return 2 if failed else 0


def _report_unjudged(path: Path, message: str, as_json: bool) -> None:
    """An image without a verdict: one line on stderr, and with --json an error object in the stream, so a
    consumer reading one object per image sees every image and never a verdict that was not reached."""
    print(f"edge-agent: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"path": str(path), "verdict": None, "error": message}), flush=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from edge_agent.runtime.bench import bench_bundle

    result = bench_bundle(str(args.model_dir), args.backend, tuple(args.batch), args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['backend']} ({result['model_file']}, input {result['input']})")
        for run in result["runs"]:
            print(
                f"  batch {run['batch']:>3}: p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  "
                f"{run['fps']:.0f} images/s"
            )
    return 0
