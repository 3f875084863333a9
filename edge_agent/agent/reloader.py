"""Reloads run on their own worker: never on the loop that pings the watchdog, never on the command
thread (a trigger must not wait behind a bundle that takes a minute to verify and warm up)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.agent.commands import CommandError, Finish
from edge_agent.errors import EdgeAgentError
from edge_agent.threads import Worker

log = logging.getLogger(__name__)

Reload = Callable[[Path | None], dict[str, Any]]


@dataclass(frozen=True)
class ReloadRequest:
    path: Path | None
    finish: Finish | None  # the MQTT reply, for cmd/reload; None for SIGHUP


class Reloader(Worker):
    def __init__(self, reload: Reload, stop: threading.Event) -> None:
        super().__init__("reloader")
        self._reload = reload
        self._stop_event = stop
        self._requests: queue.Queue[ReloadRequest] = queue.Queue(maxsize=16)

    def request(self, path: Path | None, finish: Finish | None = None) -> None:
        try:
            self._requests.put_nowait(ReloadRequest(path, finish))
        except queue.Full as e:
            raise CommandError("too many reloads waiting") from e

    def work(self) -> None:
        while not self._stop_event.is_set():
            self.beat()
            try:
                request = self._requests.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                detail, error = self._reload(request.path), None
            except (CommandError, EdgeAgentError) as e:
                detail, error = None, str(e)
                log.error("reload refused, the current model stays: %s", e)
            if request.finish is not None:
                request.finish(detail, error)
