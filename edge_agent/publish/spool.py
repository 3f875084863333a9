"""SQLite (WAL) store-and-forward: a result is committed here before it is published, deleted on PUBACK.

Besides the results the spool holds what a restart must not forget: the last `seq` handed out, and which
files of a `dir:` source were inspected (written in the same transaction as their results, so a file is
either inspected-and-spooled or neither).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.publish.payloads import ResultPayload

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inspected (uri TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (uri, name)) WITHOUT ROWID;
"""

InspectedKey = tuple[str, str]  # (source uri, file name)


class SpoolError(EdgeAgentError):
    """The spool cannot take more results (disk full, file unwritable)."""


class SeqMark:
    """The highest `seq` handed out while the database could not record it (disk full).

    A commit that fails still consumes its seqs: those results go out unspooled. SQLite cannot store that
    when the disk is full, so the mark lives in a small file allocated at start and then overwritten in
    place — 16 bytes inside one sector, which needs no free space (a rename would). It holds the seq and
    its complement, so a torn or foreign file reads as no mark.
    """

    SIZE = 4096
    _FORMAT = "<QQ"

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.pwrite(fd, bytes(self.SIZE), 0)
                os.fsync(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def read(self) -> int:
        seq, check = struct.unpack(self._FORMAT, os.pread(self._fd, struct.calcsize(self._FORMAT), 0))
        return int(seq) if check == seq ^ 0xFFFFFFFFFFFFFFFF else 0

    def write(self, seq: int) -> None:
        os.pwrite(self._fd, struct.pack(self._FORMAT, seq, seq ^ 0xFFFFFFFFFFFFFFFF), 0)
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class ResultSpool:
    """Thread-safe; `seq` keeps increasing across restarts and never repeats, also after a failed commit."""

    def __init__(self, path: Path, max_items: int = 100_000, sync: str = "full") -> None:
        self.path = path
        self.max_items = max_items
        self.dropped = 0
        self._sync = "FULL" if sync == "full" else "NORMAL"
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._db.executescript(SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
            self._count = int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
            self._mark = SeqMark(path.with_name(path.name + ".seq"))
        except (sqlite3.Error, OSError) as e:
            raise ConfigError(f"spool.path {path}: cannot open the spool ({e})") from e
        stored, marked = (int(row[0]) if row else 0), self._mark.read()
        if marked > stored:
            log.warning("seq continues after %d: results up to it were sent without the spool (disk full)", marked)
        self._last_seq = max(stored, marked)
        if self._count:
            log.info("spool %s holds %d undelivered result(s); they are sent first", path, self._count)

    def __len__(self) -> int:
        return self._count

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def put_many(self, results: Sequence[ResultPayload], inspected: Iterable[InspectedKey] = ()) -> list[str]:
        """Give each result its `seq` and commit them, with the files they came from, in one transaction.

        Returns the JSON payloads in order. On failure (SpoolError) the results keep their seqs — those
        numbers are never handed out again — and the caller sends them without the spool.
        """
        with self._lock:
            seq = self._last_seq
            payloads, rows = [], []
            for result in results:
                seq += 1
                result.seq = seq
                payload = result.model_dump_json(by_alias=True)
                payloads.append(payload)
                rows.append((seq, result.id, payload))
            self._last_seq = seq
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO results (seq, id, payload) VALUES (?, ?, ?)", rows)
                self._db.executemany("INSERT OR IGNORE INTO inspected (uri, name) VALUES (?, ?)", list(inspected))
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)", (seq,))
                overflow = self._count + len(rows) - self.max_items
                if overflow > 0:
                    self._db.execute(
                        "DELETE FROM results WHERE seq IN (SELECT seq FROM results ORDER BY seq LIMIT ?)", (overflow,)
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                self._remember_seq(seq)
                raise SpoolError(f"spool {self.path}: cannot store results ({e})") from e
            self._count += len(rows)
            if overflow > 0:
                self._count -= overflow
                self.dropped += overflow
                log.error(
                    "spool full (max_items %d): dropped the %d oldest undelivered result(s)", self.max_items, overflow
                )
            return payloads

    def _remember_seq(self, seq: int) -> None:
        try:
            self._mark.write(seq)
        except OSError as e:
            log.critical("cannot record seq %d in %s (%s): a restart may repeat it", seq, self._mark.path, e)

    def mark_inspected(self, keys: Iterable[InspectedKey]) -> None:
        """Record files inspected without a result (undecodable: their error event was sent)."""
        rows = list(keys)
        if not rows:
            return
        with self._lock:
            try:
                self._db.executemany("INSERT OR IGNORE INTO inspected (uri, name) VALUES (?, ?)", rows)
            except sqlite3.Error as e:
                log.error("spool %s: cannot record %d inspected file(s) (%s)", self.path, len(rows), e)

    def inspected_names(self, uri: str) -> set[str]:
        with self._lock:
            cursor = self._db.execute("SELECT name FROM inspected WHERE uri = ?", (uri,))
            return {str(name) for (name,) in cursor.fetchall()}

    def pending(self, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Undelivered results with seq > after_seq, in seq order."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT seq, payload FROM results WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            )
            return [(int(seq), str(payload)) for seq, payload in cursor.fetchall()]

    def delete(self, seqs: Iterable[int]) -> None:
        keys = [(s,) for s in seqs]
        if not keys:
            return
        with self._lock:
            try:
                # A delete lost in a power cut only means one more (de-duplicated) delivery, so it need
                # not wait for the disk; inserts keep the configured durability.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.total_changes
                self._db.executemany("DELETE FROM results WHERE seq = ?", keys)
                removed = self._db.total_changes - before
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                log.error("spool %s: cannot delete acknowledged results (%s); they will be sent again", self.path, e)
                return
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._count -= removed

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback failed (no transaction open)")

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._mark.close()
