"""Open a frame source from its `camera.source` string; each source reads one frame at a time."""

from __future__ import annotations

import logging
import os
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
    # (uri, file name) for a source that remembers what it inspected across restarts (dir:), else None.
    key: tuple[str, str] | None = None


class SourceIdle(Exception):
    """A watched folder has no new image yet: not an end, not an error; ask again."""


class FrameSource(Protocol):
    uri: str
    live: bool  # live sources drop frames when inference falls behind; files never do

    def read(self) -> Frame | None:
        """The next frame; None at the end of a finite source. Raises CaptureError when the source is lost,
        SourceIdle when a watched folder has nothing new yet."""
        ...

    def skip(self) -> None:
        """Drop the next frame without decoding it (keeps a live source's buffers fresh between triggers)."""
        ...

    def close(self) -> None: ...


def image_stats(folder: Path) -> dict[str, os.stat_result]:
    """Image files of a folder by name, with their stat (size and mtime tell a finished file)."""
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                found[entry.name] = entry.stat()
    return found


class FolderSource:
    """`dir:PATH` — images in sorted name order; undecodable files become error frames.

    `done` names files already inspected (kept by the daemon in its spool): they are skipped, so after a
    restart the source continues where it stopped and no image gets a second id. With `watch`, the source
    never ends: it lists the folder every `poll_s` and reads each new image once its size and mtime have
    held still for one listing (a file still being written is not read half-way).
    """

    live = False

    def __init__(
        self,
        folder: Path,
        uri: str,
        loop: bool = False,
        watch: bool = False,
        done: set[str] | None = None,
        poll_s: float = 0.2,
        files: list[str] | None = None,
    ) -> None:
        self.uri = uri
        self._folder = folder
        self._loop = loop
        self._watch = watch
        self._poll_s = poll_s
        self._remember = not loop and uri.startswith("dir:")
        self._seen: set[str] = set(done or ())
        self._queue: list[str] = sorted(n for n in files or [] if n not in self._seen)
        self._all = list(self._queue)
        self._sizes: dict[str, tuple[int, int]] = {}
        self._next_listing = 0.0
        self._index = 0
        if files is None:
            self._scan(initial=True)

    def _scan(self, initial: bool = False) -> None:
        try:
            listing = image_stats(self._folder)
        except OSError as e:
            raise CaptureError(f"camera.source {self.uri}: cannot list the folder ({e.strerror})") from e
        fresh = []
        for name, stat in listing.items():
            if name in self._seen:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            # Initially every file present is complete; later, a file must hold still for one listing.
            if initial or self._sizes.get(name) == signature:
                fresh.append(name)
                self._seen.add(name)
                self._sizes.pop(name, None)
            else:
                self._sizes[name] = signature
        self._queue.extend(sorted(fresh))
        if initial:
            self._all = sorted(listing)

    def read(self) -> Frame | None:
        if not self._queue:
            if self._watch:
                self._wait_for_files()
            elif self._loop and self._all:
                self._queue = list(self._all)
            else:
                return None
        name = self._queue.pop(0)
        index, self._index = self._index, self._index + 1
        key = (self.uri, name) if self._remember else None
        ts = time.time()
        try:
            image = decode_image_bytes((self._folder / name).read_bytes())
        except (BadInputError, OSError) as e:
            return Frame(None, index, ts, self.uri, name, error=f"{name}: {e}", key=key)
        return Frame(image, index, ts, self.uri, name, key=key)

    def _wait_for_files(self) -> None:
        delay = self._next_listing - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, self._poll_s))
        self._next_listing = time.monotonic() + self._poll_s
        self._scan()
        if not self._queue:
            raise SourceIdle(self.uri)

    def skip(self) -> None:
        """Files are not live: nothing goes stale while waiting."""

    def close(self) -> None:
        self._queue = []

    @classmethod
    def folder(
        cls, folder: Path, loop: bool = False, watch: bool = False, done: set[str] | None = None, poll_s: float = 0.2
    ) -> FolderSource:
        uri = f"dir:{folder}"
        if not folder.is_dir():
            raise ConfigError(f"camera.source {uri}: folder not found")
        source = cls(folder, uri, loop=loop, watch=watch, done=done, poll_s=poll_s)
        if not source._all and not watch:
            raise ConfigError(f"camera.source {uri}: no images in the folder")
        return source


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


def open_source(
    source: str,
    *,
    loop: bool = False,
    options: StreamOptions | None = None,
    watch: bool = False,
    done: set[str] | None = None,
    poll_s: float = 0.2,
) -> FrameSource:
    """Open a `camera.source`; `done` (dir: only) names files already inspected, which are skipped."""
    if source.startswith("dir:"):
        return FolderSource.folder(Path(source[4:]).expanduser(), loop, watch=watch, done=done, poll_s=poll_s)
    path = Path(source)
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        return FolderSource(path.parent, str(path), loop, files=[path.name])
    return VideoCaptureSource(source, loop=loop, options=options)
