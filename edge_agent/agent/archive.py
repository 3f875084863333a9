"""Archive inspected frames as JPEG under a size quota (oldest files go first)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from edge_agent.settings import ArchiveSettings

log = logging.getLogger(__name__)


class FrameArchive:
    def __init__(self, settings: ArchiveSettings, url_base: str | None = None) -> None:
        self.settings = settings
        self.url_base = url_base.rstrip("/") if url_base else None
        self.enabled = settings.save != "none"
        self._limit = int(settings.max_mb * 1024 * 1024)
        self._files: deque[tuple[Path, int]] = deque()
        self._total = 0
        self._lock = threading.Lock()
        if self.enabled:
            settings.path.mkdir(parents=True, exist_ok=True)
            existing = sorted(settings.path.rglob("*.jpg"), key=lambda p: p.stat().st_mtime)
            for path in existing:
                self._add(path, path.stat().st_size)

    def wants(self, verdict: str) -> bool:
        return self.settings.save == "all" or (self.settings.save == "fail" and verdict == "fail")

    def url_for(self, path: Path) -> str | None:
        """Where MES fetches an archived frame (served read-only by the health server), or None."""
        if self.url_base is None:
            return None
        return f"{self.url_base}/{path.relative_to(self.settings.path).as_posix()}"

    def path_for(self, result_id: str, day: str, verdict: str) -> Path:
        return self.settings.path / day / f"{result_id}_{verdict}.jpg"

    def save(self, path: Path, image: np.ndarray) -> bool:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
            if not ok:
                return False
            path.write_bytes(data.tobytes())
        except OSError as e:
            log.error("archive: cannot write %s (%s)", path, e.strerror)
            return False
        with self._lock:
            self._add(path, len(data))
        return True

    def _add(self, path: Path, size: int) -> None:
        self._files.append((path, size))
        self._total += size
        while self._total > self._limit and len(self._files) > 1:
            old, old_size = self._files.popleft()
            self._total -= old_size
            try:
                old.unlink()
            except OSError:
                log.debug("archive: %s already gone", old)

    @property
    def total_bytes(self) -> int:
        return self._total
