"""Spool stage: commits results (with the files they came from) in groups, then wakes the MQTT sender."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from edge_agent.agent.counters import Counters
from edge_agent.publish.payloads import ResultPayload
from edge_agent.publish.spool import InspectedKey, ResultSpool, SpoolError
from edge_agent.threads import Worker

log = logging.getLogger(__name__)

Notify = Callable[[], None]
Unspooled = Callable[[list[tuple[int, str]]], None]


class SpoolWriter(Worker):
    """Group commit: a commit with synchronous=FULL waits for the disk; doing it here lets inference go on
    meanwhile, and whatever queued up during one commit goes into the next. Nothing is published before
    its commit. A commit that fails (disk full) hands its results, seqs already assigned, to `unspooled`.
    """

    def __init__(self, spool: ResultSpool, counters: Counters, notify: Notify, unspooled: Unspooled) -> None:
        super().__init__("spool-writer")
        self.spool = spool
        self.counters = counters
        self.notify = notify
        self.unspooled = unspooled
        self._queue: queue.Queue[tuple[list[ResultPayload], list[InspectedKey]] | None] = queue.Queue(maxsize=64)

    def submit(self, results: list[ResultPayload], inspected: list[InspectedKey]) -> None:
        while True:
            try:
                self._queue.put((results, inspected), timeout=0.5)
                return
            except queue.Full:
                if self.died:
                    raise RuntimeError("the spool writer thread is dead") from self.crash

    def close(self) -> None:
        """Commit everything submitted so far, then stop."""
        if self.is_alive():
            self._queue.put(None)
            self.join()

    def work(self) -> None:
        closing = False
        while not closing:
            try:
                group = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.beat()
                continue
            if group is None:
                break
            results, inspected = list(group[0]), list(group[1])
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                results += more[0]
                inspected += more[1]
            self.beat()
            self._commit(results, inspected)

    def _commit(self, results: list[ResultPayload], inspected: list[InspectedKey]) -> None:
        try:
            self.spool.put_many(results, inspected)
        except SpoolError as e:
            with self.counters.lock:
                self.counters.spool_errors += len(results)
            log.error("%s; %d result(s) wait in memory instead", e, len(results))
            self.unspooled([(r.seq, r.model_dump_json(by_alias=True)) for r in results])
        self.notify()
        stamp = time.monotonic()
        with self.counters.lock:
            c = self.counters
            c.results += len(results)
            c.failed += sum(1 for r in results if r.verdict == "fail")
            c.passed += sum(1 for r in results if r.verdict == "pass")
            c.by_verdict_label.update((r.verdict, r.label) for r in results)
            c.result_times.extend([stamp] * len(results))
