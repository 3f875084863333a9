import sqlite3
import threading

import pytest

from edge_agent.publish.payloads import Latency, ModelRef, ResultPayload, SourceRef
from edge_agent.publish.spool import ResultSpool, SpoolError


def result(result_id: str, label: str = "good") -> ResultPayload:
    return ResultPayload(
        id=result_id,
        seq=0,
        station="s",
        ts="2026-01-01T00:00:00.000Z",
        verdict="pass",
        label=label,
        confidence=1.0,
        defect_score=0.0,
        threshold=0.5,
        scores={"good": 1.0},
        model=ModelRef(name="m", version="1", sha256="0" * 64),
        source=SourceRef(uri="dir:x", frame=0, name=f"{result_id}.png"),
        latency_ms=Latency(preprocess=0, inference=0, total=0),
        image=None,
    )


def results(n: int, start: int = 0) -> list[ResultPayload]:
    return [result(f"r{start + i}") for i in range(n)]


def seqs_of(stored: list[ResultPayload]) -> list[int]:
    return [r.seq for r in stored]


def test_seq_increases_and_survives_restart_even_when_empty(tmp_path):
    spool = ResultSpool(tmp_path / "s.db")
    stored = results(3)
    spool.put_many(stored)
    assert seqs_of(stored) == [1, 2, 3]
    spool.delete([1, 2, 3])
    assert len(spool) == 0
    spool.close()
    reopened = ResultSpool(tmp_path / "s.db")
    again = results(1)
    reopened.put_many(again)
    assert seqs_of(again) == [4]


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
        spool.put_many([result("big", label="x" * 200_000)])
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


def test_a_failed_commit_consumes_its_seqs_also_across_a_restart(tmp_path):
    """Disk full: the failed batch goes out unspooled with seqs 3-4; after a restart the next is 5, not 3."""
    path = tmp_path / "s.db"
    spool = ResultSpool(path)
    spool.put_many(results(2))
    spool._db.execute(f"PRAGMA max_page_count={spool._db.execute('PRAGMA page_count').fetchone()[0] + 1}")
    failed = [result("big1", label="x" * 200_000), result("big2")]
    with pytest.raises(SpoolError):
        spool.put_many(failed)
    assert seqs_of(failed) == [3, 4]
    spool.close()
    reopened = ResultSpool(path)
    later = results(1, 10)
    reopened.put_many(later)
    assert seqs_of(later) == [5]


def test_files_are_recorded_inspected_in_the_same_transaction_as_their_results(tmp_path):
    spool = ResultSpool(tmp_path / "s.db")
    spool.put_many(results(2), inspected=[("dir:/a", "0.png"), ("dir:/a", "1.png")])
    spool._db.execute("PRAGMA max_page_count=1")  # nothing more fits: the next commit fails whole
    with pytest.raises(SpoolError):
        spool.put_many([result("big", label="x" * 200_000)], inspected=[("dir:/a", "2.png")])
    spool.mark_inspected([("dir:/b", "x.png")])
    spool.close()
    reopened = ResultSpool(tmp_path / "s.db")
    assert reopened.inspected_names("dir:/a") == {"0.png", "1.png"}
    assert reopened.inspected_names("dir:/b") == {"x.png"}
    assert reopened.inspected_names("dir:/c") == set()


def test_a_torn_seq_mark_reads_as_none(tmp_path):
    from edge_agent.publish.spool import SeqMark

    mark = SeqMark(tmp_path / "m")
    mark.write(41)
    assert mark.read() == 41
    with open(tmp_path / "m", "r+b") as handle:
        handle.write(b"\x07")  # half of a write: seq and its check disagree
    assert mark.read() == 0
