"""capture → inference → decision → publish: two threads joined by a bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.settings import CameraSettings
from edge_agent.capture.sources import Frame, FrameSource, StreamOptions, open_source
from edge_agent.errors import BackendError, BadInputError, CaptureError, ConfigError
from edge_agent.publish.payloads import RESULT_SCHEMA, iso_utc
from edge_agent.publish.spool import ResultSpool, SpoolError
from edge_agent.runtime.inspector import Inspector

log = logging.getLogger(__name__)

END = None  # queued after the last frame of a finite source


@dataclass
class Counters:
    frames: int = 0
    results: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    dropped: int = 0
    spool_errors: int = 0
    started: float = field(default_factory=time.monotonic)
    inference_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    result_times: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fps(self, window_s: float = 10.0) -> float:
        now = time.monotonic()
        recent = [t for t in list(self.result_times) if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def inference_percentiles(self) -> tuple[float | None, float | None]:
        values = list(self.inference_ms)
        if not values:
            return None, None
        return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def open_camera(camera: CameraSettings) -> FrameSource:
    """Open the configured source with the configured timeouts and frame size."""
    options = StreamOptions(camera.open_timeout_s, camera.read_timeout_s, camera.width, camera.height)
    return open_source(camera.source, loop=camera.loop, options=options)


class CaptureLoop(threading.Thread):
    """Reads frames and queues them: drop-oldest for live cameras, blocking for files and folders."""

    def __init__(
        self,
        camera: CameraSettings,
        frames: queue.Queue[Frame | None],
        stop: threading.Event,
        counters: Counters,
        triggers: queue.Queue[str | None],
    ) -> None:
        super().__init__(name="capture", daemon=True)
        self.camera = camera
        self.frames = frames
        self.stop_event = stop
        self.counters = counters
        self.triggers = triggers
        self.heartbeat = time.monotonic()
        self.state = "starting"
        self.source: FrameSource | None = None
        self.fatal: Exception | None = None

    def run(self) -> None:
        backoff = 0.5
        next_due = time.monotonic()
        try:
            while not self.stop_event.is_set():
                self.heartbeat = time.monotonic()
                if self.source is None:
                    try:
                        self.source = open_camera(self.camera)
                        self.state = "running"
                        backoff = 0.5
                        log.info("camera %s opened", self.camera.source)
                    except CaptureError as e:
                        self.state = "reconnecting"
                        log.warning("%s; retrying in %.1f s", e, backoff)
                        self.stop_event.wait(backoff)
                        backoff = min(backoff * 2, self.camera.reconnect_max_s)
                        continue
                part_id: str | None = None
                try:
                    if self.camera.trigger == "mqtt":
                        part_id = self._wait_for_trigger(self.source)
                        if part_id is None:
                            continue
                    elif self.camera.fps > 0:
                        delay = next_due - time.monotonic()
                        if delay > 0 and self.stop_event.wait(delay):
                            break
                        next_due = max(next_due + 1.0 / self.camera.fps, time.monotonic() - 1.0)
                    frame = self.source.read()
                except CaptureError as e:
                    log.warning("%s; reconnecting", e)
                    self.state = "reconnecting"
                    self.source.close()
                    self.source = None
                    continue
                if frame is None:
                    self.state = "finished"
                    break
                frame.part_id = part_id or None
                with self.counters.lock:
                    self.counters.frames += 1
                self._enqueue(frame, live=self.source.live)
        except ConfigError as e:
            self.fatal = e
            log.error("%s", e)
        finally:
            if self.source is not None:
                self.source.close()
            self._enqueue(END, live=False)

    def _wait_for_trigger(self, source: FrameSource) -> str | None:
        """Wait up to 0.5 s for a trigger ('' when it carried no part id), None when none came.

        A live camera keeps producing frames meanwhile; they are dropped undecoded so that the frame
        read after the trigger shows the part that is there now, not one from the driver's buffer.
        """
        deadline = time.monotonic() + 0.5
        while True:
            try:
                return self.triggers.get_nowait() or ""
            except queue.Empty:
                pass
            if time.monotonic() >= deadline or self.stop_event.is_set():
                return None
            if source.live:
                source.skip()  # blocks for at most one frame interval (or the read timeout)
            else:
                self.stop_event.wait(0.02)

    def _enqueue(self, item: Frame | None, live: bool) -> None:
        if live:
            while True:
                try:
                    self.frames.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self.frames.get_nowait()
                        with self.counters.lock:
                            self.counters.dropped += 1
                    except queue.Empty:
                        pass
        while True:
            try:
                self.frames.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop_event.is_set() and item is not END:
                    return


class InspectorSlot:
    """The inspector in use, and one waiting to replace it between batches (reload)."""

    def __init__(self, inspector: Inspector) -> None:
        self.current = inspector
        self.pending: Inspector | None = None
        self.lock = threading.Lock()

    def swap_if_pending(self) -> None:
        with self.lock:
            if self.pending is None:
                return
            old, self.current, self.pending = self.current, self.pending, None
        old.close()
        log.info("model %s %s now in use", self.current.bundle.manifest.name, self.current.bundle.manifest.version)


class SpoolWriter(threading.Thread):
    """Commits results to the spool in groups, then wakes the sender.

    A commit with synchronous=FULL waits for the disk; doing it here lets inference go on meanwhile, and
    whatever queued up during one commit goes into the next (group commit). Nothing is published before
    its commit.
    """

    def __init__(self, spool: ResultSpool, counters: Counters, publish: Any) -> None:
        super().__init__(name="spool-writer", daemon=True)
        self.spool = spool
        self.counters = counters
        self.publish = publish
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=64)

    def submit(self, results: list[dict[str, Any]]) -> None:
        self._queue.put(results)

    def close(self) -> None:
        """Commit everything submitted so far, then stop."""
        self._queue.put(None)
        self.join()

    def run(self) -> None:
        closing = False
        while not closing:
            group = self._queue.get()
            if group is None:
                break
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                group = group + more
            self._commit(group)

    def _commit(self, results: list[dict[str, Any]]) -> None:
        try:
            self.spool.put_many(results)
            self.publish(None)
        except SpoolError as e:
            with self.counters.lock:
                self.counters.spool_errors += len(results)
            log.error("%s; sending %d result(s) without the spool", e, len(results))
            self.publish(results)
        stamp = time.monotonic()
        with self.counters.lock:
            c = self.counters
            c.results += len(results)
            c.failed += sum(1 for r in results if r["verdict"] == "fail")
            c.passed += sum(1 for r in results if r["verdict"] == "pass")
            c.result_times.extend([stamp] * len(results))


class InferenceLoop(threading.Thread):
    """Micro-batches queued frames, inspects them, spools the results and wakes the MQTT sender."""

    def __init__(
        self,
        frames: queue.Queue[Frame | None],
        slot: InspectorSlot,
        station: str,
        spool: ResultSpool,
        archive: FrameArchive,
        counters: Counters,
        max_batch: int,
        publish: Any,
        on_error: Any,
    ) -> None:
        super().__init__(name="inference", daemon=True)
        self.frames = frames
        self.slot = slot
        self.station = station
        self.archive = archive
        self.counters = counters
        self.max_batch = max_batch
        self.on_error = on_error  # callable(frame, message)
        self.heartbeat = time.monotonic()
        self.finished = threading.Event()
        self.writer = SpoolWriter(spool, counters, publish)

    def _next_batch(self) -> tuple[list[Frame], bool]:
        first = self.frames.get(timeout=0.5)
        if first is END:
            return [], True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self.frames.get_nowait()
            except queue.Empty:
                break
            if item is END:
                return batch, True
            batch.append(item)
        return batch, False

    def run(self) -> None:
        self.writer.start()
        try:
            while True:
                self.heartbeat = time.monotonic()
                try:
                    batch, ended = self._next_batch()
                except queue.Empty:
                    continue
                if batch:
                    self.slot.swap_if_pending()
                    self.process(batch)
                if ended:
                    break
        finally:
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
            verdicts, timing = inspector.inspect([f.image for f in good if f.image is not None])
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
        model = {"name": manifest.name, "version": manifest.version, "sha256": inspector.bundle.model_sha256}
        per_frame_infer = timing.inference_ms / len(good)
        now = time.perf_counter()
        results = []
        for frame, verdict in zip(good, verdicts, strict=True):
            result_id = uuid.uuid4().hex
            captured = iso_utc(frame.ts)
            image_path = None
            if self.archive.enabled and self.archive.wants(verdict.verdict) and frame.image is not None:
                path = self.archive.path_for(result_id, captured[:10], verdict.verdict)
                if self.archive.save(path, frame.image):
                    image_path = str(path)
            result: dict[str, Any] = {
                "schema": RESULT_SCHEMA,
                "id": result_id,
                "seq": 0,
                "station": self.station,
                "ts": captured,
                "verdict": verdict.verdict,
                "label": verdict.label,
                "confidence": round(verdict.confidence, 6),
                "defect_score": round(verdict.defect_score, 6),
                "threshold": inspector.threshold,
                "scores": verdict.scores,
                "model": model,
                "source": {"uri": frame.uri, "frame": frame.index, "name": frame.name},
                "latency_ms": {
                    "preprocess": round(timing.preprocess_ms / len(good), 3),
                    "inference": round(per_frame_infer, 3),
                    "total": round((now - frame.captured) * 1000.0, 3),
                },
                "image": image_path,
            }
            if frame.part_id:
                result["part_id"] = frame.part_id
            results.append(result)
        with self.counters.lock:
            self.counters.inference_ms.extend([per_frame_infer] * len(results))
        self.writer.submit(results)

    def _error(self, frame: Frame, message: str) -> None:
        with self.counters.lock:
            self.counters.errors += 1
        log.warning("frame %d of %s not inspected: %s", frame.index, frame.uri, message)
        self.on_error(frame, message)
