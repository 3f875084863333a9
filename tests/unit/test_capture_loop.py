"""Triggers end in exactly one frame or one error frame carrying their part_id (real folders, faked cameras)."""

import queue
import threading
import time

import cv2
import numpy as np

from edge_agent.agent.capture_loop import CaptureLoop, Trigger
from edge_agent.agent.counters import Counters
from edge_agent.capture.sources import Frame
from edge_agent.errors import CaptureError
from edge_agent.settings import CameraSettings


class FailingCamera:
    """A live camera whose reads fail: the cable was pulled after the trigger."""

    uri = "0"
    live = True

    def read(self):
        raise CaptureError("camera 0: no frame (disconnected or stalled)")

    def skip(self):
        time.sleep(0.01)

    def close(self):
        pass


def collect(frames: queue.Queue, count: int, timeout: float = 10) -> list[Frame]:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            item = frames.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is not None:
            got.append(item)
    return got


def start_loop(camera, triggers, monkeypatch=None, source=None, queue_size=8):
    frames: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    loop = CaptureLoop(camera, frames, stop, Counters(), triggers)
    if source is not None:
        loop.source = source
        loop.state = "running"
    loop.start()
    return loop, frames, stop


def test_a_trigger_whose_read_fails_ends_in_an_error_frame_with_its_part_id():
    triggers: queue.Queue = queue.Queue()
    camera = CameraSettings(source="0", trigger="mqtt", reconnect_max_s=0.1)
    loop, frames, stop = start_loop(camera, triggers, source=FailingCamera())
    triggers.put(Trigger("P-7"))
    (error,) = collect(frames, 1)
    stop.set()
    loop.join(10)
    assert error.image is None
    assert error.part_id == "P-7"
    assert "camera read failed" in error.error


def test_a_trigger_the_camera_cannot_serve_in_time_expires_into_an_error_frame(tmp_path):
    triggers: queue.Queue = queue.Queue()
    camera = CameraSettings(source="0", trigger="mqtt", trigger_timeout_s=0.3, reconnect_max_s=0.2)
    loop, frames, stop = start_loop(camera, triggers)  # device 0 does not exist here: never opens
    triggers.put(Trigger("P-8"))
    (error,) = collect(frames, 1)
    stop.set()
    loop.join(10)
    assert error.part_id == "P-8"
    assert "camera not available" in error.error


def test_triggers_waiting_at_stop_end_in_error_frames(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    triggers: queue.Queue = queue.Queue()
    camera = CameraSettings(source=f"dir:{tmp_path}", trigger="mqtt", watch=True)
    for i in range(4):
        triggers.put(Trigger(f"P-{i}"))
    loop, frames, stop = start_loop(camera, triggers)
    served = collect(frames, 2)
    stop.set()
    loop.join(10)
    rest = collect(frames, 2, timeout=2)
    assert [f.part_id for f in served] == ["P-0", "P-1"]
    assert all(f.image is not None for f in served)
    assert sorted(f.part_id for f in rest) == ["P-2", "P-3"]
    assert all(f.image is None and "stopped" in f.error for f in rest)


def test_triggered_frames_of_a_live_camera_are_never_dropped():
    class LiveCamera:
        uri = "0"
        live = True

        def __init__(self):
            self.n = 0

        def read(self):
            self.n += 1
            return Frame(np.zeros((4, 4, 3), np.uint8), self.n, time.time(), "0")

        def skip(self):
            time.sleep(0.001)

        def close(self):
            pass

    triggers: queue.Queue = queue.Queue()
    camera = CameraSettings(source="0", trigger="mqtt")
    for i in range(6):
        triggers.put(Trigger(f"P-{i}"))
    loop, frames, stop = start_loop(camera, triggers, source=LiveCamera(), queue_size=2)
    time.sleep(0.5)  # nobody takes frames: a drop-oldest queue would have lost four by now
    got = collect(frames, 6)
    stop.set()
    loop.join(10)
    assert [f.part_id for f in got] == [f"P-{i}" for i in range(6)]
    assert loop.counters.dropped == 0
