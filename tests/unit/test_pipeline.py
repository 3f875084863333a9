"""The pipeline stages with real SQLite, real ONNX Runtime and real OpenCV; the backend faked where a fault
must be made to order."""

import queue
import shutil
import time

import numpy as np
import pytest

from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.counters import Counters
from edge_agent.agent.inference_loop import InferenceLoop, InspectorSlot
from edge_agent.agent.spool_writer import SpoolWriter
from edge_agent.capture.sources import Frame
from edge_agent.errors import BackendError
from edge_agent.publish.spool import ResultSpool
from edge_agent.runtime.backends import create_backend
from edge_agent.runtime.bundle import load_bundle
from edge_agent.runtime.inspector import Inspector
from edge_agent.settings import ArchiveSettings
from tests.models import nan_bundle, strict_loads


class FlakyBackend:
    """Fails on batches that contain an all-white frame, like a driver error on one frame."""

    name = "flaky"
    max_batch = 1

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes

    def infer(self, batch):
        if batch.max() > 2.0:  # white pixels, normalized
            raise BackendError("device lost")
        return np.zeros((len(batch), self.n_classes), np.float32)

    def close(self):
        pass


def run_loop(inspector, frames_in, tmp_path, archive=None, max_batch=1):
    frames: queue.Queue = queue.Queue()
    spool = ResultSpool(tmp_path / "spool.db", sync="normal")
    errors = []
    counters = Counters()
    writer = SpoolWriter(spool, counters, lambda: None, lambda rows: None)
    loop = InferenceLoop(
        frames,
        InspectorSlot(inspector),
        "t",
        archive or FrameArchive(ArchiveSettings(save="none")),
        counters,
        max_batch=max_batch,
        writer=writer,
        report_error=lambda frame, message: errors.append((frame.index, frame.part_id, message)),
    )
    for frame in frames_in:
        frames.put(frame)
    frames.put(None)
    writer.start()
    loop.start()
    return loop, spool, errors


def frame(i, value, part_id=None):
    return Frame(np.full((40, 40, 3), value, np.uint8), i, time.time(), "dir:x", f"{i}.png", part_id=part_id)


def test_backend_error_on_one_frame_is_reported_and_the_loop_goes_on(tiny_bundle, tmp_path):
    bundle = load_bundle(tiny_bundle)
    inspector = Inspector(bundle, FlakyBackend(len(bundle.manifest.classes)))
    frames = [frame(i, 255 if i == 2 else 60) for i in range(5)]
    frames.append(Frame(None, 5, time.time(), "dir:x", "5.png", error="5.png: not a decodable image"))
    loop, spool, errors = run_loop(inspector, frames, tmp_path)
    assert loop.finished.wait(30)
    assert errors == [(2, None, "device lost"), (5, None, "5.png: not a decodable image")]
    assert len(spool.pending(0, 100)) == 4
    assert loop.counters.errors == 2
    assert loop.counters.results == 4


def test_non_finite_model_output_is_an_error_event_never_a_verdict(tiny_bundle, tmp_path):
    """A real ONNX model that outputs NaN for dark frames and -inf for a zero mean: those frames get error
    events with their part_id; the bright frames in the same batch still get (strict JSON) results."""
    bundle = load_bundle(nan_bundle(tiny_bundle, tmp_path / "nan"))
    inspector = Inspector(bundle, create_backend(bundle, "onnxruntime", max_batch=8))
    mean = np.asarray(bundle.manifest.input.mean) * 255
    zero_mean = np.clip(np.round(mean[::-1]), 0, 255).astype(np.uint8)  # BGR value whose normalized mean ≈ 0
    frames = [frame(0, 250, "P-0"), frame(1, 5, "P-1"), frame(2, 250, "P-2"), frame(3, 0, "P-3")]
    frames.append(Frame(np.tile(zero_mean, (40, 40, 1)), 4, time.time(), "dir:x", "4.png", part_id="P-4"))
    loop, spool, errors = run_loop(inspector, frames, tmp_path, max_batch=8)
    assert loop.finished.wait(30)
    assert [(index, part) for index, part, _ in errors] == [(1, "P-1"), (3, "P-3"), (4, "P-4")]
    assert all("not finite" in message for *_, message in errors)
    stored = [strict_loads(payload) for _, payload in spool.pending(0, 100)]
    assert [r["part_id"] for r in stored] == ["P-0", "P-2"]
    assert loop.counters.unjudged == 3
    assert loop.counters.results == 2


def test_a_worker_that_raises_outside_the_frame_guard_is_recorded_as_dead(tiny_bundle, tmp_path):
    class BrokenArchive(FrameArchive):
        def save(self, path, image):
            raise RuntimeError("archive exploded")

    bundle = load_bundle(tiny_bundle)
    inspector = Inspector(bundle, create_backend(bundle, "onnxruntime", max_batch=1))
    archive = BrokenArchive(ArchiveSettings(save="all", path=tmp_path / "archive"))
    loop, _, _ = run_loop(inspector, [frame(0, 60)], tmp_path, archive=archive)
    loop.join(30)
    assert not loop.finished.is_set(), "a crash is not a finished source"
    assert loop.died
    assert "archive exploded" in str(loop.crash)


def test_a_second_pending_reload_closes_the_first(tiny_bundle):
    closed = []

    class Closing:
        def __init__(self, name):
            self.name = name

        def close(self):
            closed.append(self.name)

    slot = InspectorSlot(Closing("current"))  # type: ignore[arg-type]
    slot.offer(Closing("first"))  # type: ignore[arg-type]
    slot.offer(Closing("second"))  # type: ignore[arg-type]
    assert closed == ["first"]
    assert slot.pending.name == "second"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.onnx"])
def test_bundle_paths_outside_the_bundle_are_refused(tiny_bundle, tmp_path, bad):
    import json

    from edge_agent.errors import ModelBundleError

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][bad] = manifest["files"]["model.onnx"]
    manifest["model_file"] = bad
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelBundleError, match=r"(not inside|outside) the bundle"):
        load_bundle(copy)
