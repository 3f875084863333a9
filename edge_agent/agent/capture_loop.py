"""Capture stage: reads frames (on a trigger, or continuously) and queues them for inference."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from edge_agent.agent.counters import Counters
from edge_agent.capture.sources import Frame, FrameSource, SourceIdle, StreamOptions, open_source
from edge_agent.errors import CaptureError, ConfigError
from edge_agent.settings import CameraSettings
from edge_agent.threads import Worker

log = logging.getLogger(__name__)

END = None  # queued after the last frame of a finite source


@dataclass(frozen=True)
class Trigger:
    """An accepted cmd/trigger: it ends in exactly one result or one error event carrying its part_id."""

    part_id: str | None
    accepted: float = field(default_factory=time.monotonic)


def open_camera(camera: CameraSettings, done: set[str] | None = None) -> FrameSource:
    """Open the configured source with the configured timeouts, frame size and folder memory."""
    options = StreamOptions(camera.open_timeout_s, camera.read_timeout_s, camera.width, camera.height)
    return open_source(
        camera.source, loop=camera.loop, options=options, watch=camera.watch, done=done, poll_s=camera.watch_poll_s
    )


class CaptureLoop(Worker):
    """Reads frames and queues them: drop-oldest for live cameras in continuous mode, blocking otherwise.

    A triggered frame is never dropped, and a trigger that gets no frame (the camera fails, the trigger
    waits longer than `trigger_timeout_s`, the agent stops) is queued as an error frame with its part_id.
    """

    def __init__(
        self,
        camera: CameraSettings,
        frames: queue.Queue[Frame | None],
        stop: threading.Event,
        counters: Counters,
        triggers: queue.Queue[Trigger],
        done: set[str] | None = None,
    ) -> None:
        super().__init__("capture")
        self.camera = camera
        self.frames = frames
        self.stop_event = stop
        self.counters = counters
        self.triggers = triggers
        self.done = done
        self.state = "starting"
        self.source: FrameSource | None = None
        self.fatal: Exception | None = None
        self._trigger: Trigger | None = None  # taken from the queue, not yet served

    def work(self) -> None:
        try:
            self._loop()
        except ConfigError as e:
            self.fatal = e
            log.error("%s", e)
        finally:
            if self.source is not None:
                self.source.close()
            self._fail_waiting_triggers("the agent stopped before a frame was taken")
            self._enqueue(END, live=False)

    def _loop(self) -> None:
        backoff = 0.5
        next_due = time.monotonic()
        while not self.stop_event.is_set():
            self.beat()
            if self.source is None:
                try:
                    self.source = open_camera(self.camera, self.done)
                    self.state = "running"
                    backoff = 0.5
                    log.info("camera %s opened", self.camera.source)
                except CaptureError as e:
                    self.state = "reconnecting"
                    log.warning("%s; retrying in %.1f s", e, backoff)
                    self._expire_triggers(f"camera not available ({e})")
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.camera.reconnect_max_s)
                    continue
            if self.camera.trigger != "mqtt" and self.camera.fps > 0:
                delay = next_due - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
                next_due = max(next_due + 1.0 / self.camera.fps, time.monotonic() - 1.0)
            try:
                if self.camera.trigger == "mqtt":
                    if self._trigger is None:
                        self._trigger = self._wait_for_trigger(self.source)  # a live camera is read meanwhile
                    if self._trigger is None or self._expire_triggers("no frame within camera.trigger_timeout_s"):
                        continue
                frame = self.source.read()
            except SourceIdle:
                continue  # a watched folder with nothing new: a waiting trigger stays until it expires
            except CaptureError as e:
                log.warning("%s; reconnecting", e)
                self.state = "reconnecting"
                self._serve_trigger_with_error(f"camera read failed ({e})")
                self.source.close()
                self.source = None
                continue
            if frame is None:
                self.state = "finished"
                break
            trigger, self._trigger = self._trigger, None
            frame.part_id = trigger.part_id if trigger else None
            with self.counters.lock:
                self.counters.frames += 1
            self._enqueue(frame, live=self.source.live and trigger is None)

    def _wait_for_trigger(self, source: FrameSource) -> Trigger | None:
        """Wait up to 0.5 s for a trigger; None when none came.

        A live camera keeps producing frames meanwhile; they are dropped undecoded so that the frame
        read after the trigger shows the part that is there now, not one from the driver's buffer.
        """
        deadline = time.monotonic() + 0.5
        while True:
            try:
                return self.triggers.get_nowait()
            except queue.Empty:
                pass
            if time.monotonic() >= deadline or self.stop_event.is_set():
                return None
            if source.live:
                source.skip()  # blocks for at most one frame interval (or the read timeout)
            else:
                self.stop_event.wait(0.02)

    def _expire_triggers(self, reason: str) -> bool:
        """Error frames for triggers older than trigger_timeout_s (the held one and queued ones); True if
        the held trigger expired."""
        limit = time.monotonic() - self.camera.trigger_timeout_s
        expired = False
        if self._trigger is not None and self._trigger.accepted < limit:
            self._serve_trigger_with_error(reason)
            expired = True
        while self._trigger is None:
            try:
                waiting = self.triggers.get_nowait()
            except queue.Empty:
                break
            if waiting.accepted >= limit:
                self._trigger = waiting
                break
            self._error_frame(waiting, reason)
        return expired

    def _serve_trigger_with_error(self, reason: str) -> None:
        if self._trigger is not None:
            self._error_frame(self._trigger, reason)
            self._trigger = None

    def _fail_waiting_triggers(self, reason: str) -> None:
        self._serve_trigger_with_error(reason)
        while True:
            try:
                self._error_frame(self.triggers.get_nowait(), reason)
            except queue.Empty:
                return

    def _error_frame(self, trigger: Trigger, reason: str) -> None:
        log.warning("trigger for part %s not served: %s", trigger.part_id or "(no part_id)", reason)
        frame = Frame(None, -1, time.time(), self.camera.source, error=reason, part_id=trigger.part_id)
        self._enqueue(frame, live=False)

    def _enqueue(self, item: Frame | None, live: bool) -> None:
        if live:
            while True:
                try:
                    self.frames.put_nowait(item)
                    return
                except queue.Full:
                    self._drop_oldest_untriggered()
        while True:
            try:
                self.frames.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop_event.is_set() and item is not None and item.part_id is None:
                    return  # stopping: a continuous frame may go; a triggered one (or its error) may not
                self.beat()

    def _drop_oldest_untriggered(self) -> None:
        """Only continuous live frames come here (triggered and error frames are queued blocking)."""
        try:
            self.frames.get_nowait()
        except queue.Empty:
            return
        with self.counters.lock:
            self.counters.dropped += 1
