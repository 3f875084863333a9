import sqlite3
import threading

import pytest

from edge_agent.publish.spool import ResultSpool, SpoolError


def results(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"r{start + i}"} for i in range(n)]


def test_seq_increases_and_survives_restart_even_when_empty(tmp_path):
    spool = ResultSpool(tmp_path / "s.db")
    stored = spool.put_many(results(3))
    assert [r["seq"] for r in stored] == [1, 2, 3]
    spool.delete([1, 2, 3])
    assert len(spool) == 0
    spool.close()
    reopened = ResultSpool(tmp_path / "s.db")
    assert [r["seq"] for r in reopened.put_many(results(1))] == [4]


def test_pending_in_seq_order_and_delete(tmp_path):
    spool = ResultSpool(tmp_path / "s.db")
    spool.put_many(results(5))
    assert [seq for seq, _ in spool.pending(0, 10)] == [1, 2, 3, 4, 5]
    assert [seq for seq, _ in spool.pending(3, 10)] == [4, 5]
    spool.delete([2, 4])
    assert [seq for seq, _ in spool.pending(0, 10)] == [1, 3, 5]
    assert len(spool) == 3
    spool.delete([2])  # deleting twice (a duplicate PUBACK) changes nothing
    assert len(spool) == 3


def test_bounded_by_max_items_oldest_dropped_and_counted(tmp_path):
    spool = ResultSpool(tmp_path / "s.db", max_items=10)
    spool.put_many(results(8))
    spool.put_many(results(5, 8))
    assert len(spool) == 10
    assert spool.dropped == 3
    assert spool.pending(0, 1)[0][0] == 4


def test_full_disk_is_a_clear_error_and_loses_nothing_stored(tmp_path):
    path = tmp_path / "s.db"
    spool = ResultSpool(path)
    spool.put_many(results(2))
    # Cap the database file size: the next large insert fails like a full disk would.
    spool._db.execute(f"PRAGMA max_page_count={spool._db.execute('PRAGMA page_count').fetchone()[0] + 1}")
    with pytest.raises(SpoolError, match="cannot store"):
        spool.put_many([{"id": "big", "blob": "x" * 200_000}])
    assert len(spool) == 2
    assert [seq for seq, _ in spool.pending(0, 10)] == [1, 2]


def test_unwritable_location_is_a_config_error(tmp_path):
    from edge_agent.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"spool\.path"):
        ResultSpool(blocker / "s.db")


def test_concurrent_writers_and_deleters(tmp_path):
    spool = ResultSpool(tmp_path / "s.db", sync="normal")

    def writer():
        for _ in range(50):
            spool.put_many(results(4))

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [seq for seq, _ in spool.pending(0, 10_000)]
    assert seqs == list(range(1, 601))
    spool.delete(seqs[:300])
    assert len(spool) == 300
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_inserts_keep_full_durability_after_deletes(tmp_path):
    spool = ResultSpool(tmp_path / "s.db", sync="full")
    spool.put_many(results(2))
    spool.delete([1])
    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
