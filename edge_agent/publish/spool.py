"""SQLite (WAL) store-and-forward: a result is committed here before it is published, deleted on PUBACK."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError, EdgeAgentError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SpoolError(EdgeAgentError):
    """The spool cannot take more results (disk full, file unwritable)."""


class ResultSpool:
    """Thread-safe; `seq` keeps increasing across restarts (stored in `meta`, not derived from rows)."""

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
            self._last_seq = int(row[0]) if row else 0
            self._count = int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        except (sqlite3.Error, OSError) as e:
            raise ConfigError(f"spool.path {path}: cannot open the spool ({e})") from e
        if self._count:
            log.info("spool %s holds %d undelivered result(s); they are sent first", path, self._count)

    def __len__(self) -> int:
        return self._count

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def put_many(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Assign each result its `seq`, commit all of them in one transaction, return them."""
        with self._lock:
            seq = self._last_seq
            rows = []
            for result in results:
                seq += 1
                result["seq"] = seq
                rows.append((seq, result["id"], json.dumps(result, separators=(",", ":"))))
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO results (seq, id, payload) VALUES (?, ?, ?)", rows)
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)", (seq,))
                overflow = self._count + len(rows) - self.max_items
                if overflow > 0:
                    self._db.execute(
                        "DELETE FROM results WHERE seq IN (SELECT seq FROM results ORDER BY seq LIMIT ?)", (overflow,)
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                # The seqs stay taken (in memory) so results sent without the spool keep increasing seqs.
                self._last_seq = seq
                raise SpoolError(f"spool {self.path}: cannot store results ({e})") from e
            self._last_seq = seq
            self._count += len(rows)
            if overflow > 0:
                self._count -= overflow
                self.dropped += overflow
                log.error(
                    "spool full (max_items %d): dropped the %d oldest undelivered result(s)", self.max_items, overflow
                )
            return results

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
