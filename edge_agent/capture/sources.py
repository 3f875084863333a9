"""Open a frame source from its `camera.source` string; each source reads one frame at a time."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge_agent.data.layout import IMAGE_SUFFIXES
from edge_agent.errors import BadInputError, CaptureError, ConfigError
from edge_agent.runtime.preprocess import decode_image_bytes

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One captured frame, or the record of one that could not be decoded (image None, error set)."""

    image: np.ndarray | None
    index: int
    ts: float  # wall-clock capture time (epoch seconds)
    uri: str
    name: str | None = None
    error: str | None = None
    part_id: str | None = None
    captured: float = field(default_factory=time.perf_counter)


class FrameSource(Protocol):
    uri: str
    live: bool  # live sources drop frames when inference falls behind; files never do

    def read(self) -> Frame | None:
        """The next frame; None at the end of a finite source. Raises CaptureError when the source is lost."""
        ...

    def skip(self) -> None:
        """Drop the next frame without decoding it (keeps a live source's buffers fresh between triggers)."""
        ...

    def close(self) -> None: ...


class FolderSource:
    """`dir:PATH` — images in sorted name order; undecodable files become error frames."""

    live = False

    def __init__(self, files: list[Path], uri: str, loop: bool) -> None:
        self.uri = uri
        self._files = files
        self._loop = loop
        self._next = 0
        self._index = 0

    def read(self) -> Frame | None:
        if self._next >= len(self._files):
            if not self._loop:
                return None
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        index, self._index = self._index, self._index + 1
        ts = time.time()
        try:
            image = decode_image_bytes(path.read_bytes())
        except (BadInputError, OSError) as e:
            return Frame(None, index, ts, self.uri, path.name, error=f"{path.name}: {e}")
        return Frame(image, index, ts, self.uri, path.name)

    def skip(self) -> None:
        """Files are not live: nothing goes stale while waiting."""

    def close(self) -> None:
        self._files = []

    @classmethod
    def folder(cls, folder: Path, loop: bool) -> FolderSource:
        uri = f"dir:{folder}"
        if not folder.is_dir():
            raise ConfigError(f"camera.source {uri}: folder not found")
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"camera.source {uri}: no images in the folder")
        return cls(files, uri, loop)


def capture_target(source: str) -> tuple[str | int, int, bool, str | None]:
    """(what to open, OpenCV backend, live?, file name) for a VideoCapture source string."""
    if source.isdigit():
        return int(source), cv2.CAP_ANY, True, None
    if source.startswith("gst:"):
        return source[4:], cv2.CAP_GSTREAMER, True, None
    if source.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return source, cv2.CAP_FFMPEG, True, None
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"camera.source {source!r}: no such file, and not a device index, URL, dir: or gst:")
    return str(path), cv2.CAP_FFMPEG, False, path.name


@dataclass(frozen=True)
class StreamOptions:
    """How to open a VideoCapture stream: network timeouts and the frame size to ask a camera for."""

    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    width: int | None = None
    height: int | None = None


class VideoCaptureSource:
    """OpenCV VideoCapture for device indexes, RTSP/HTTP streams, video files and gst: pipelines."""

    def __init__(self, source: str, *, loop: bool = False, options: StreamOptions | None = None) -> None:
        options = options or StreamOptions()
        self.uri = source
        target, api, self.live, self._name = capture_target(source)
        self._loop = loop
        params: list[int] = []
        if api == cv2.CAP_FFMPEG:
            # Without these a stalled RTSP server blocks open() and read() for about 30 s.
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(options.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(options.read_timeout_s * 1000),
            ]
        self._capture = cv2.VideoCapture(target, api, params)
        if not self._capture.isOpened():
            self._capture.release()
            raise CaptureError(f"camera {source}: cannot open (check the address, cable, permissions)")
        if options.width:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, options.width)
        if options.height:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, options.height)
        self._index = 0

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok and not self.live and self._loop and self._index > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok:
            if self.live:
                raise CaptureError(f"camera {self.uri}: no frame (disconnected or stalled)")
            return None
        index, self._index = self._index, self._index + 1
        return Frame(image, index, time.time(), self.uri, self._name)

    def skip(self) -> None:
        if not self.live:
            return
        if not self._capture.grab():
            raise CaptureError(f"camera {self.uri}: no frame (disconnected or stalled)")
        self._index += 1

    def close(self) -> None:
        self._capture.release()


def open_source(source: str, *, loop: bool = False, options: StreamOptions | None = None) -> FrameSource:
    if source.startswith("dir:"):
        return FolderSource.folder(Path(source[4:]).expanduser(), loop)
    path = Path(source)
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        return FolderSource([path], str(path), loop)
    return VideoCaptureSource(source, loop=loop, options=options)
