"""What an MES integrator and an operator meet: the example consumer offline for part of a run, MQTT 5
properties, archived frames over HTTP, /healthz and STATUS= with the broker away, metrics."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.devtools.broker import free_port

from .conftest import finish, image_folder, start_agent

pytestmark = [pytest.mark.broker, pytest.mark.slow]
CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "mes_consumer.py"


def consumer(broker, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CONSUMER), "--port", str(broker.port), "--station", "it", "--client-id", "mes-1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_mes_consumer_offline_for_part_of_the_run_still_gets_every_result(
    mosquitto_broker, agent_config, tiny_data, tmp_path
):
    broker = mosquitto_broker
    folder = image_folder(tiny_data, tmp_path / "frames", 30)
    first = consumer(broker, "--count", "5", "--timeout", "60")
    time.sleep(1.5)  # subscribed, its persistent session exists at the broker
    agent = start_agent(agent_config(broker, f"dir:{folder}", camera={"fps": 10}))
    out1, err1 = first.communicate(timeout=90)
    assert first.returncode == 0, err1
    code, out = finish(agent, timeout=90)  # the rest is published while the consumer is away
    assert code == 0, out
    second = consumer(broker, "--count", "25", "--timeout", "30")  # same client id: same session
    out2, err2 = second.communicate(timeout=60)
    lines = [json.loads(line) for line in (out1 + out2).splitlines()]
    results = [line for line in lines if "id" in line]
    assert {r["source"]["name"] for r in results} == {f"{i:05d}.png" for i in range(30)}, err2
    assert sorted({r["seq"] for r in results}) == list(range(1, 31))


def test_results_and_replies_carry_mqtt5_properties(broker, agent_config, tiny_data, tmp_path):
    if broker.protocol != "5":
        pytest.skip("MQTT 5 properties need an MQTT 5 broker")
    folder = image_folder(tiny_data, tmp_path / "frames", 2)
    seen: dict[str, object] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="props", protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, m: seen.setdefault(m.topic.rsplit("/", 1)[-1], m.properties)
    client.connect("127.0.0.1", broker.port)
    client.subscribe("edge-agent/it/#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    agent = start_agent(agent_config(broker, f"dir:{folder}", camera={"trigger": "mqtt", "loop": True}))
    try:
        deadline = time.monotonic() + 30
        while "status" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        client.publish("edge-agent/it/cmd/trigger", b'{"part_id": "P-1"}', qos=1)
        while not {"result", "reply"} <= set(seen) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        agent.send_signal(signal.SIGTERM)
        finish(agent, timeout=30)
        client.loop_stop()
        client.disconnect()
    result = seen["result"]
    assert result.ContentType == "application/json"
    assert result.PayloadFormatIndicator == 1
    assert ("schema", "edge-agent/result/1") in result.UserProperty
    assert 0 < seen["reply"].MessageExpiryInterval <= 60


def test_healthz_logs_and_systemd_status_with_the_broker_away(agent_config, tiny_data, tmp_path):
    folder = image_folder(tiny_data, tmp_path / "frames", 5)
    notify_path = tmp_path / "notify.sock"
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notifications.bind(str(notify_path))
    notifications.settimeout(0.2)
    health = free_port()
    config = agent_config(
        None,
        f"dir:{folder}",
        camera={"loop": True, "fps": 5},
        mqtt={"stats_interval_s": 0.5},
        health={"port": health},
        archive={"save": "all"},
    )
    import os

    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NOTIFY_SOCKET": str(notify_path), "PYTHONUNBUFFERED": "1"},
    )
    messages: list[str] = []
    try:
        body: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            body.get("mqtt_error") and any("STATUS=" in m for m in messages[1:])
        ):
            try:
                messages.append(notifications.recv(4096).decode())
            except TimeoutError:
                pass
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2).read())
            except OSError:
                continue
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{health}/metrics", timeout=2).read().decode()
    finally:
        agent.send_signal(signal.SIGTERM)
        code, out = finish(agent, timeout=30)
        notifications.close()
    assert code == 0, out
    assert body["status"] == "degraded"
    assert body["mqtt_connected"] is False
    assert "Connection refused" in body["mqtt_error"]
    assert any("Connection refused" in reason for reason in body["degraded"])
    assert "MQTT cannot connect" in out, "the first failure is logged, not only the reconnects"
    assert "READY=1" in messages[0]
    status = [m for m in messages if m.startswith("STATUS=") and "results" in m]
    assert status, messages
    assert "MQTT DOWN" in status[-1]
    assert "edge_agent_mqtt_connected 0.0" in metrics
    assert 'edge_agent_build_info{model="tiny"' in metrics


def test_archived_frames_are_served_read_only_at_the_url_in_the_result(
    broker, agent_config, subscriber_for, tiny_data, tmp_path
):
    folder = image_folder(tiny_data, tmp_path / "frames", 3)
    health = free_port()
    sub = subscriber_for(broker)
    config = agent_config(
        broker, f"dir:{folder}", camera={"loop": True, "fps": 5}, archive={"save": "all"}, health={"port": health}
    )
    agent = start_agent(config)
    try:
        assert sub.wait_for(lambda s: len(s.results) >= 2, timeout=30)
        url = sub.results[0]["image_url"]
        assert url.startswith(f"http://127.0.0.1:{health}/archive/")
        frame = urllib.request.urlopen(url, timeout=5)
        assert frame.headers["Content-Type"] == "image/jpeg"
        assert frame.read()[:2] == b"\xff\xd8"
    finally:
        agent.send_signal(signal.SIGTERM)
        code, out = finish(agent, timeout=30)
    assert code == 0, out
