"""The inference loop reports frames it cannot inspect and goes on (faked backend, real SQLite spool)."""

import queue
import time

import numpy as np

from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.pipeline import END, Counters, InferenceLoop, InspectorSlot
from edge_agent.agent.settings import ArchiveSettings
from edge_agent.capture.sources import Frame
from edge_agent.errors import BackendError
from edge_agent.publish.spool import ResultSpool
from edge_agent.runtime.bundle import load_bundle
from edge_agent.runtime.inspector import Inspector


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


def test_backend_error_on_one_frame_is_reported_and_the_loop_goes_on(tiny_bundle, tmp_path):
    bundle = load_bundle(tiny_bundle)
    inspector = Inspector(bundle, FlakyBackend(len(bundle.manifest.classes)))
    frames: queue.Queue = queue.Queue()
    spool = ResultSpool(tmp_path / "spool.db", sync="normal")
    errors = []
    loop = InferenceLoop(
        frames,
        InspectorSlot(inspector),
        "t",
        spool,
        FrameArchive(ArchiveSettings(save="none")),
        Counters(),
        max_batch=1,
        publish=lambda results: None,
        on_error=lambda frame, message: errors.append((frame.index, message)),
    )
    for i in range(5):
        value = 255 if i == 2 else 60
        frames.put(Frame(np.full((40, 40, 3), value, np.uint8), i, time.time(), "dir:x", f"{i}.png"))
    frames.put(Frame(None, 5, time.time(), "dir:x", "5.png", error="5.png: not a decodable image"))
    frames.put(END)
    loop.start()
    assert loop.finished.wait(30)
    assert errors == [(2, "device lost"), (5, "5.png: not a decodable image")]
    stored = [json_row for _, json_row in spool.pending(0, 100)]
    assert len(stored) == 4
    assert loop.counters.errors == 2
    assert loop.counters.results == 4
