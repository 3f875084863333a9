"""The daemon as a user runs it: a real process, a real broker, real images."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
import time

import pytest

from edge_agent.publish.payloads import ResultPayload, StatusPayload

from .conftest import finish, image_folder, start_agent

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_every_frame_gives_exactly_one_complete_result(broker, agent_config, subscriber_for, tiny_data, tmp_path):
    folder = image_folder(tiny_data, tmp_path / "frames", 25)
    sub = subscriber_for(broker)
    config = agent_config(broker, f"dir:{folder}", archive={"save": "fail"})
    code, out = finish(start_agent(config))
    assert code == 0, out
    assert sub.wait_for(lambda s: len(s.results) >= 25, timeout=10), out
    time.sleep(0.3)
    assert len(sub.results) == 25
    assert [r["seq"] for r in sub.results] == list(range(1, 26))
    names = []
    for result in sub.results:
        ResultPayload.model_validate(result)  # every field of docs/contracts.md §5, nothing unknown
        assert result["verdict"] == ("fail" if result["defect_score"] >= result["threshold"] else "pass")
        assert result["source"]["uri"] == f"dir:{folder}"
        if result["verdict"] == "fail":
            assert result["image"]
            assert (tmp_path / "archive").exists()
        names.append(result["source"]["name"])
    assert names == sorted(p.name for p in folder.iterdir())
    assert len({r["id"] for r in sub.results}) == 25
    statuses = [StatusPayload.model_validate(s).state for s in sub.topic_payloads("status")]
    assert statuses[0] == "online"
    assert statuses[-1] == "stopped"


def test_broker_restart_mid_run_loses_nothing(mosquitto_broker, agent_config, subscriber_for, tiny_data, tmp_path):
    broker = mosquitto_broker
    folder = image_folder(tiny_data, tmp_path / "frames", 60)
    sub = subscriber_for(broker)
    process = start_agent(agent_config(broker, f"dir:{folder}", camera={"fps": 20}))
    assert sub.wait_for(lambda s: len(s.results) >= 5, timeout=20)
    # Frozen first (TCP up, no PUBACKs): what was published meanwhile must still be in the spool. A link that
    # deleted rows on publish would pass the restart below anyway, because paho resends its own queue.
    broker.send_signal(signal.SIGSTOP)
    time.sleep(1.0)
    with sqlite3.connect(tmp_path / "spool.db") as db:
        unacknowledged = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    broker.send_signal(signal.SIGCONT)
    assert unacknowledged >= 10, "results published to a frozen broker left the spool"
    broker.stop()
    time.sleep(1.5)
    broker.start()
    code, out = finish(process)
    assert code == 0, out
    assert sub.wait_for(lambda s: s.unique_seqs() == list(range(1, 61)), timeout=20), (sub.unique_seqs(), out)


def test_sigkill_while_broker_away_then_restart_delivers_gap_free(
    broker, agent_config, subscriber_for, tiny_data, tmp_path
):
    folder = image_folder(tiny_data, tmp_path / "frames", 20)
    broker.stop()
    config = agent_config(broker, f"dir:{folder}", camera={"fps": 25, "loop": True})
    process = start_agent(config)
    spool = tmp_path / "spool.db"
    deadline = time.monotonic() + 30
    import sqlite3

    def spooled() -> int:
        try:
            with sqlite3.connect(spool) as db:
                return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        except sqlite3.Error:
            return 0

    while spooled() < 15 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_with = spooled()
    assert killed_with >= 15
    broker.start()
    sub = subscriber_for(broker)
    config = agent_config(broker, f"dir:{folder}", camera={"fps": 0, "loop": False})
    code, out = finish(start_agent(config))
    assert code == 0, out
    expected = killed_with + 20
    assert sub.wait_for(lambda s: len(s.unique_seqs()) >= expected, timeout=20), out
    seqs = sub.unique_seqs()
    assert seqs == list(range(1, seqs[-1] + 1)), "gap in delivered seqs"
    assert seqs[-1] >= expected
    ids = {}
    for result in sub.results:
        assert ids.setdefault(result["seq"], result["id"]) == result["id"], "re-delivery changed an id"


def test_corrupt_image_is_reported_and_skipped(broker, agent_config, subscriber_for, tiny_data, tmp_path):
    folder = image_folder(tiny_data, tmp_path / "frames", 6)
    (folder / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    sub = subscriber_for(broker)
    code, out = finish(start_agent(agent_config(broker, f"dir:{folder}")))
    assert code == 0, out
    assert sub.wait_for(lambda s: len(s.results) >= 5 and s.topic_payloads("error"), timeout=10), out
    assert sorted(r["source"]["name"] for r in sub.results) == [
        "00000.png",
        "00001.png",
        "00003.png",
        "00004.png",
        "00005.png",
    ]
    (error,) = sub.topic_payloads("error")
    assert error["source"]["name"] == "00002.png"
    assert "00002.png" in out


def publish(broker, topic: str, payload: bytes) -> None:
    import paho.mqtt.publish as single

    single.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port)


def test_malformed_commands_get_replies_and_change_nothing(
    broker, agent_config, subscriber_for, tiny_data, tmp_path, tiny_bundle
):
    folder = image_folder(tiny_data, tmp_path / "frames", 3)
    sub = subscriber_for(broker)
    config = agent_config(broker, f"dir:{folder}", camera={"trigger": "mqtt", "loop": True})
    process = start_agent(config)
    try:
        assert sub.wait_for(lambda s: any(p["state"] == "online" for p in s.topic_payloads("status")), timeout=20)
        time.sleep(0.5)
        bad = [
            ("trigger", b"{not json"),
            ("trigger", b"[1, 2]"),
            ("trigger", b'{"part_id": 5}'),
            ("trigger", b"\xff\xfe"),
            ("trigger", b"x" * 100_000),
            ("reload", b'{"path": "../../etc"}'),
            ("reload", b'{"path": 1}'),
            ("reboot", b"{}"),
            ("trigger", b'{"part_id": "a", "extra": 1}'),
        ]
        for name, payload in bad:
            publish(broker, f"edge-agent/it/cmd/{name}", payload)
        assert sub.wait_for(
            lambda s: sum(len(s.topic_payloads(f"cmd/{n}/reply")) for n in ("trigger", "reload", "reboot")) >= len(bad),
            timeout=20,
        )
        replies = [r for n in ("trigger", "reload", "reboot") for r in sub.topic_payloads(f"cmd/{n}/reply")]
        assert all(r["ok"] is False and r["error"] for r in replies)
        assert sub.results == []  # no malformed trigger produced a frame
        publish(broker, "edge-agent/it/cmd/trigger", json.dumps({"part_id": "P-42"}).encode())
        assert sub.wait_for(lambda s: len(s.results) == 1, timeout=20)
        assert sub.results[0]["part_id"] == "P-42"
        # the model in use did not change: a refused reload keeps the old one
        assert (
            sub.results[0]["model"]["sha256"]
            == json.loads((tiny_bundle / "manifest.json").read_text())["files"]["model.onnx"]["sha256"]
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code, out = finish(process, timeout=30)
    assert code == 0, out


def test_rtsp_that_never_answers_does_not_hang(broker, agent_config, subscriber_for):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    sub = subscriber_for(broker)
    config = agent_config(broker, f"rtsp://127.0.0.1:{port}/line", camera={"open_timeout_s": 1, "read_timeout_s": 1})
    started = time.monotonic()
    process = start_agent(config)
    try:
        assert sub.wait_for(lambda s: any(p["state"] == "online" for p in s.topic_payloads("status")), timeout=20)
        assert time.monotonic() - started < 20
        time.sleep(2)
    finally:
        stop_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code, out = finish(process, timeout=20)
        server.close()
    assert code == 0, out
    assert time.monotonic() - stop_at < 10
    assert "retrying" in out


def test_bad_bundle_and_bad_config_exit_2(broker, agent_config, tmp_path, tiny_data):
    config = agent_config(broker, f"dir:{tiny_data / 'test' / 'good'}", model={"path": str(tmp_path / "missing")})
    code, out = finish(start_agent(config))
    assert code == 2
    assert "edge-agent: error:" in out
    assert "Traceback" not in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 'x'\n")
    code, out = finish(start_agent(bad))
    assert code == 2
    assert "mqtt.port" in out


def test_camera_that_vanishes_and_returns_is_reconnected(broker, agent_config, subscriber_for):
    from edge_agent.devtools.broker import free_port

    from .mjpeg import MjpegCamera

    camera = MjpegCamera(free_port())
    camera.plug_in()
    sub = subscriber_for(broker)
    config = agent_config(broker, camera.url, camera={"open_timeout_s": 1, "read_timeout_s": 1, "reconnect_max_s": 1})
    process = start_agent(config)
    try:
        assert sub.wait_for(lambda s: len(s.results) >= 5, timeout=30)
        camera.unplug()
        time.sleep(3)
        before = len(sub.results)
        time.sleep(1)
        assert len(sub.results) - before <= 2  # nothing flows while the camera is away
        camera.plug_in()
        returned = time.monotonic()
        assert sub.wait_for(lambda s: len(s.results) >= before + 5, timeout=15)
        assert time.monotonic() - returned < 5, "reconnect took longer than 5 s after the camera returned"
    finally:
        camera.unplug()
        process.send_signal(signal.SIGTERM)
        code, out = finish(process, timeout=30)
    assert code == 0, out
    assert "reconnecting" in out


def test_disk_full_mid_run_is_loud_and_results_still_go_out(broker, agent_config, subscriber_for, tiny_data, tmp_path):
    """The spool hits a file-size limit (like a full disk) mid-run: results are sent without it and counted."""
    import os
    import subprocess
    import sys

    folder = image_folder(tiny_data, tmp_path / "frames", 300)
    sub = subscriber_for(broker)
    config = agent_config(broker, f"dir:{folder}", mqtt={"stats_interval_s": 0.5})
    # RLIMIT_FSIZE in 1 KiB blocks: SQLite's files cannot grow past it; SIGXFSZ ignored so writes fail instead.
    command = f"trap '' XFSZ; ulimit -f 200; exec {sys.executable} -m edge_agent run --config {config}"
    process = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    code, out = finish(process)
    assert code == 0, out
    assert "cannot store results" in out
    assert sub.wait_for(lambda s: len(s.unique_seqs()) >= 300, timeout=20), (len(sub.unique_seqs()), out[-2000:])
    stats = sub.topic_payloads("stats")
    assert stats[-1]["spool_errors"] > 0
    assert stats[-1]["results"] == 300


def test_reload_takes_only_verified_bundles_inside_the_models_dir(
    broker, agent_config, subscriber_for, tiny_data, tiny_bundle, tmp_path
):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_bundle, models / "current")
    shutil.copytree(tiny_bundle, models / "tampered")
    onnx = models / "tampered" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-100] ^= 0x01
    onnx.write_bytes(bytes(data))
    folder = image_folder(tiny_data, tmp_path / "frames", 3)
    sub = subscriber_for(broker)
    config = agent_config(
        broker,
        f"dir:{folder}",
        camera={"trigger": "mqtt", "loop": True},
        model={"path": str(models / "current"), "models_dir": str(models)},
    )
    process = start_agent(config)
    try:
        assert sub.wait_for(lambda s: any(p["state"] == "online" for p in s.topic_payloads("status")), timeout=20)
        time.sleep(0.5)
        publish(broker, "edge-agent/it/cmd/reload", b'{"path": "tampered"}')
        publish(broker, "edge-agent/it/cmd/reload", json.dumps({"path": str(tiny_bundle)}).encode())
        publish(broker, "edge-agent/it/cmd/reload", b'{"path": "current"}')
        assert sub.wait_for(lambda s: len(s.topic_payloads("cmd/reload/reply")) == 3, timeout=30)
        tampered, outside, current = sub.topic_payloads("cmd/reload/reply")
        assert not tampered["ok"]
        assert "does not match" in tampered["error"]
        assert not outside["ok"]
        assert "inside" in outside["error"]
        assert current["ok"]
        publish(broker, "edge-agent/it/cmd/trigger", b"{}")
        assert sub.wait_for(lambda s: len(s.results) == 1, timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        code, out = finish(process, timeout=30)
    assert code == 0, out


def test_trigger_inspects_the_frame_of_now_not_a_buffered_one(broker, agent_config, subscriber_for, tmp_path):
    import cv2

    from edge_agent.devtools.broker import free_port

    from .mjpeg import MjpegCamera, frame_number

    camera = MjpegCamera(free_port(), fps=30)
    camera.plug_in()
    sub = subscriber_for(broker)
    config = agent_config(
        broker,
        camera.url,
        camera={"trigger": "mqtt", "open_timeout_s": 2, "read_timeout_s": 2},
        archive={"save": "all"},
    )
    process = start_agent(config)
    try:
        assert sub.wait_for(lambda s: any(p["state"] == "online" for p in s.topic_payloads("status")), timeout=20)
        time.sleep(3)  # ~90 frames arrive while nobody asks for one
        sent_before_trigger = camera.counter
        publish(broker, "edge-agent/it/cmd/trigger", b'{"part_id": "P-1"}')
        assert sub.wait_for(lambda s: len(s.results) == 1, timeout=20)
        image = cv2.imread(sub.results[0]["image"])
        assert frame_number(image) >= sent_before_trigger - 2  # at most a frame in flight, never a stale one
    finally:
        camera.unplug()
        process.send_signal(signal.SIGTERM)
        code, out = finish(process, timeout=30)
    assert code == 0, out
