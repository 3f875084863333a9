import json
import os
import socket
import urllib.request

import numpy as np
import pytest

from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.health import HealthServer
from edge_agent.agent.sdnotify import notify, watchdog_interval_s
from edge_agent.settings import ArchiveSettings


def test_archive_keeps_within_quota(tmp_path):
    archive = FrameArchive(ArchiveSettings(path=tmp_path, save="all", max_mb=0.02))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(20):
        path = archive.path_for(f"id{i}", "2026-01-01", "fail")
        assert archive.save(path, rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        paths.append(path)
    assert archive.total_bytes <= 0.02 * 1024 * 1024
    assert paths[-1].exists()
    assert not paths[0].exists()
    assert archive.wants("pass")
    assert not FrameArchive(ArchiveSettings(path=tmp_path, save="fail")).wants("pass")


def test_sd_notify_reaches_the_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert notify("READY=1")
    assert server.recv(100) == b"READY=1"
    server.close()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")


def test_watchdog_interval(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None


def test_health_metrics_and_archive_on_localhost(tmp_path):
    from edge_agent.agent.counters import INFERENCE_BUCKETS
    from edge_agent.agent.health import MetricsSnapshot

    stats = {"frames": 3, "errors": 1, "dropped": 0, "refused": 3, "unjudged": 0, "spooled": 4, "fps": 2.5}
    buckets = [0] * (len(INFERENCE_BUCKETS) + 1)
    buckets[2] = 2  # two frames between 1 and 2 ms
    snapshot = MetricsSnapshot(
        stats,
        {("pass", "good"): 1, ("fail", "scratch"): 1},
        buckets,
        0.003,
        {"version": "0.1.0", "model": "press7", "sha256": "ab" * 32},
    )
    archive = tmp_path / "archive"
    (archive / "2026-12-01").mkdir(parents=True)
    (archive / "2026-12-01" / "r1_fail.jpg").write_bytes(b"\xff\xd8jpeg")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    server = HealthServer("127.0.0.1", 0, lambda: (False, {"ok": False}), lambda: snapshot, archive)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert failure.value.code == 503
        assert json.loads(failure.value.read()) == {"ok": False}
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'edge_agent_results_total{label="scratch",verdict="fail"} 1.0' in metrics
        assert 'edge_agent_results_total{label="good",verdict="pass"} 1.0' in metrics
        assert 'edge_agent_inference_seconds_bucket{le="0.002"} 2.0' in metrics
        assert "edge_agent_inference_seconds_count 2.0" in metrics
        assert 'edge_agent_build_info{model="press7",sha256="' in metrics
        assert "edge_agent_spooled 4.0" in metrics
        assert "edge_agent_refused_total 3.0" in metrics
        assert "process_resident_memory_bytes" in metrics
        assert "_ms" not in metrics, "base units: seconds"
        frame = urllib.request.urlopen(f"{base}/archive/2026-12-01/r1_fail.jpg", timeout=5)
        assert frame.headers["Content-Type"] == "image/jpeg"
        assert frame.read() == b"\xff\xd8jpeg"
        for escape in ("../secret.jpg", "%2e%2e/secret.jpg", "2026-12-01/../../secret.jpg"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/archive/{escape}", timeout=5)
            assert refused.value.code == 404
        request = urllib.request.Request(f"{base}/archive/2026-12-01/r1_fail.jpg", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as read_only:
            urllib.request.urlopen(request, timeout=5)
        assert read_only.value.code == 405
        assert server.server.server_address[0] == "127.0.0.1"
    finally:
        server.stop()
