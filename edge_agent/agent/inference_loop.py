"""Inference stage: micro-batches queued frames, inspects them, hands results to the spool writer."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable

from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.counters import Counters
from edge_agent.agent.results import build_result
from edge_agent.agent.spool_writer import SpoolWriter
from edge_agent.capture.sources import Frame
from edge_agent.errors import BackendError, BadInputError
from edge_agent.publish.payloads import ModelRef, ResultPayload, iso_utc
from edge_agent.publish.spool import InspectedKey
from edge_agent.runtime.inspector import Inspector, Timing
from edge_agent.runtime.postprocess import Unjudged, Verdict
from edge_agent.threads import Worker

log = logging.getLogger(__name__)

ErrorReporter = Callable[[Frame, str], None]


class InspectorSlot:
    """The inspector in use, and one waiting to replace it between batches (reload)."""

    def __init__(self, inspector: Inspector) -> None:
        self.current = inspector
        self.pending: Inspector | None = None
        self.lock = threading.Lock()

    def offer(self, inspector: Inspector) -> None:
        """Queue `inspector` for the next batch; one offered earlier and not yet used is closed."""
        with self.lock:
            replaced, self.pending = self.pending, inspector
        if replaced is not None:
            replaced.close()

    def swap_if_pending(self) -> None:
        with self.lock:
            if self.pending is None:
                return
            old, self.current, self.pending = self.current, self.pending, None
        old.close()
        log.info("model %s %s now in use", self.current.bundle.manifest.name, self.current.bundle.manifest.version)


class InferenceLoop(Worker):
    """Frames in; results to the spool writer; frames that cannot be judged to `report_error`.

    Fail closed: a frame without an image, a batch the backend fails on, and a frame whose model output is
    not finite each end in an error event (with the frame's part_id), never in a verdict.
    """

    def __init__(
        self,
        frames: queue.Queue[Frame | None],
        slot: InspectorSlot,
        station: str,
        archive: FrameArchive,
        counters: Counters,
        max_batch: int,
        writer: SpoolWriter,
        report_error: ErrorReporter,
    ) -> None:
        super().__init__("inference")
        self.frames = frames
        self.slot = slot
        self.station = station
        self.archive = archive
        self.counters = counters
        self.max_batch = max_batch
        self.writer = writer
        self.report_error = report_error
        self.finished = threading.Event()

    def _next_batch(self) -> tuple[list[Frame], bool]:
        first = self.frames.get(timeout=0.5)
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self.frames.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def work(self) -> None:
        while True:
            self.beat()
            try:
                batch, ended = self._next_batch()
            except queue.Empty:
                continue
            if batch:
                self.slot.swap_if_pending()
                self.process(batch)
            if ended:
                break
        self.writer.close()
        self.finished.set()

    def process(self, frames: list[Frame]) -> None:
        good = []
        for frame in frames:
            if frame.image is None:
                self._error(frame, frame.error or "no image")
            else:
                good.append(frame)
        if not good:
            return
        inspector = self.slot.current
        try:
            outcomes, timing = inspector.inspect([f.image for f in good if f.image is not None])
        except (BackendError, BadInputError) as e:
            for frame in good:
                self._error(frame, str(e))
            return
        except Exception as e:  # one bad batch must not stop the line; the frames are reported
            log.exception("inspection failed for %d frame(s)", len(good))
            for frame in good:
                self._error(frame, f"{type(e).__name__}: {e}")
            return
        manifest = inspector.bundle.manifest
        model = ModelRef(name=manifest.name, version=manifest.version, sha256=inspector.bundle.model_sha256)
        results: list[ResultPayload] = []
        inspected: list[InspectedKey] = []
        for frame, outcome in zip(good, outcomes, strict=True):
            if isinstance(outcome, Unjudged):
                with self.counters.lock:
                    self.counters.unjudged += 1
                self._error(frame, outcome.reason)
                continue
            results.append(self._result(frame, outcome, inspector.threshold, model, timing, len(good)))
            if frame.key is not None:
                inspected.append(frame.key)
        if results:
            with self.counters.lock:
                self.counters.observe_inference(timing.inference_ms / 1000.0 / len(good), len(results))
            self.writer.submit(results, inspected)

    def _result(
        self, frame: Frame, verdict: Verdict, threshold: float, model: ModelRef, timing: Timing, n: int
    ) -> ResultPayload:
        result_id = uuid.uuid4().hex
        image_path = image_url = None
        if self.archive.enabled and self.archive.wants(verdict.verdict) and frame.image is not None:
            path = self.archive.path_for(result_id, iso_utc(frame.ts)[:10], verdict.verdict)
            if self.archive.save(path, frame.image):
                image_path, image_url = str(path), self.archive.url_for(path)
        return build_result(
            frame,
            verdict,
            station=self.station,
            threshold=threshold,
            model=model,
            timing=timing,
            batch_size=n,
            image=image_path,
            image_url=image_url,
            result_id=result_id,
        )

    def _error(self, frame: Frame, message: str) -> None:
        with self.counters.lock:
            self.counters.errors += 1
        log.warning("frame %d of %s not inspected: %s", frame.index, frame.uri, message)
        self.report_error(frame, message)
