"""Worker threads whose death is seen: the daemon ends (non-zero) instead of running on without them."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABCMeta, abstractmethod

log = logging.getLogger(__name__)


class Worker(threading.Thread, metaclass=ABCMeta):
    """A daemon thread that records why it died.

    `work()` is the thread's body. Any exception escaping it is kept in `crash` and logged at CRITICAL
    with its traceback; whoever supervises the workers (the daemon's main loop) stops pinging the
    watchdog and exits non-zero, so that systemd restarts the service. A worker that merely returns
    (a finite source that finished) is not a crash.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.crash: BaseException | None = None
        self.heartbeat = time.monotonic()

    @abstractmethod
    def work(self) -> None:
        """The thread's body; each worker defines it (a Worker without one cannot be made)."""

    def run(self) -> None:
        try:
            self.work()
        except BaseException as e:
            self.crash = e
            log.critical("worker thread %r died: %s: %s", self.name, type(e).__name__, e, exc_info=e)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    @property
    def died(self) -> bool:
        return self.crash is not None
