"""Result delivery: a thread that publishes spooled (and unspooled) results oldest first and settles their
acknowledgements — a success deletes the row, a refusal keeps it and backs off.

It knows nothing of the MQTT connection beyond a `publish` callable and a `connected` event, so the
bookkeeping is testable without a broker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from edge_agent.publish.spool import ResultSpool
from edge_agent.threads import Worker

log = logging.getLogger(__name__)

REFUSAL_FIRST_RETRY_S = 1.0
MAX_READ = 500

# publish(payload) -> (paho's rc, message id)
Publish = Callable[[str], tuple[int, int]]


class ResultSender(Worker):
    def __init__(
        self,
        spool: ResultSpool,
        publish: Publish,
        connected: threading.Event,
        *,
        topic: str,
        inflight_max: int,
        refused_retry_max_s: float,
        unspooled_max: int,
    ) -> None:
        super().__init__("mqtt-sender")
        self.spool = spool
        self.publish = publish
        self.connected = connected
        self.topic = topic
        self.inflight_max = inflight_max
        self.refused_retry_max_s = refused_retry_max_s
        self.wake = threading.Event()
        self.reset = threading.Event()  # set on (re)connect: resend everything unacknowledged
        self.stop_event = threading.Event()
        self.delivered = 0
        self.refused = 0
        self.last_refusal: str | None = None
        self.unspooled_dropped = 0
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()  # (mid, refusal or None)
        # Owned by this thread: what is in flight, where the spool was read up to, the refusal back-off.
        self.inflight: dict[int, int] = {}  # mid -> seq
        self.cursor = 0
        self.hold_until = 0.0
        self._backoff = REFUSAL_FIRST_RETRY_S
        self._reasons_logged: set[str] = set()
        self._refused_seqs: set[int] = set()  # refused and not delivered since: the refusal still stands
        # Results the spool could not take, by seq; filled by the pipeline, so under a lock.
        self._unspooled: OrderedDict[int, str] = OrderedDict()
        self._unspooled_max = unspooled_max
        self._unspooled_lock = threading.Lock()

    # ---- called from other threads ----------------------------------------------------------------------
    def acknowledge(self, mid: int, refusal: str | None) -> None:
        """paho's on_publish: `refusal` is the failure reason of an MQTT 5 PUBACK/PUBREC, else None."""
        self._acks.put((mid, refusal))
        self.wake.set()

    def add_unspooled(self, results: list[tuple[int, str]]) -> None:
        """(seq, payload) of results the spool refused: kept in memory, bounded, oldest dropped and counted."""
        with self._unspooled_lock:
            for seq, payload in results:
                self._unspooled[seq] = payload
            while len(self._unspooled) > self._unspooled_max:
                seq, _ = self._unspooled.popitem(last=False)
                self.unspooled_dropped += 1
                log.error("unspooled result seq %d dropped: more than %d wait in memory", seq, self._unspooled_max)
        self.wake.set()

    @property
    def unspooled(self) -> int:
        with self._unspooled_lock:
            return len(self._unspooled)

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        if self.is_alive():
            self.join(timeout=5)

    # ---- the thread ----------------------------------------------------------------------------------------
    def work(self) -> None:
        while not self.stop_event.is_set():
            self.beat()
            self.wake.wait(0.25)
            self.wake.clear()
            self.settle_acks()
            if self.connected.is_set() and self.send_ready() == MAX_READ:
                self.wake.set()  # more may be waiting

    def send_ready(self) -> int:
        """Publish what may go now, oldest first; returns how many rows were read."""
        if self.reset.is_set():
            self.reset.clear()
            self.inflight.clear()
            self.cursor = 0
        if time.monotonic() < self.hold_until:
            return 0  # the broker refused results: wait out the back-off before sending again
        room = min(self.inflight_max - len(self.inflight), MAX_READ)
        if room <= 0:
            return 0
        in_flight = set(self.inflight.values())
        with self._unspooled_lock:
            rows = [(s, p) for s, p in self._unspooled.items() if s not in in_flight][:room]
        from_spool = self.spool.pending(self.cursor, room - len(rows))
        for seq, payload in rows + from_spool:
            if seq in in_flight:
                continue
            rc, mid = self.publish(payload)
            if rc != 0:
                break
            self.inflight[mid] = seq
        if from_spool:
            self.cursor = max(self.cursor, from_spool[-1][0])
        return len(rows) + len(from_spool)

    def settle_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid, refusal = self._acks.get_nowait()
            except queue.Empty:
                break
            seq = self.inflight.pop(mid, None)
            if seq is None:
                continue
            if refusal is None:
                done.append(seq)
            else:
                self._refused(seq, refusal)
        if done:
            self.spool.delete(done)
            with self._unspooled_lock:
                for seq in done:
                    self._unspooled.pop(seq, None)
            self.delivered += len(done)
            self._refused_seqs.difference_update(done)
            if not self._refused_seqs:
                self._backoff = REFUSAL_FIRST_RETRY_S
                self.last_refusal = None

    def _refused(self, seq: int, reason: str) -> None:
        """Keep the result, count it, say so once per reason, and send it again after a back-off."""
        self.refused += 1
        self.last_refusal = reason
        self._refused_seqs.add(seq)
        if reason not in self._reasons_logged:
            self._reasons_logged.add(reason)
            log.error(
                "MQTT broker refused result seq %d on %s (%s): kept in the spool and retried with back-off; "
                "check the broker's ACL and quotas for this client",
                seq,
                self.topic,
                reason,
            )
        self.cursor = min(self.cursor, seq - 1)
        if time.monotonic() >= self.hold_until:
            self.hold_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.refused_retry_max_s)
