"""MqttLink's handling of events raised while the broker is not connected (no broker: paho's client is faked)."""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.agent.settings import MqttSettings
from edge_agent.publish import mqtt_link
from edge_agent.publish.mqtt_link import MqttLink
from edge_agent.publish.spool import ResultSpool


class RecordingClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, int]] = []

    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False) -> Any:
        self.published.append((topic, qos))

    def subscribe(self, topic: str, qos: int = 0) -> None:
        pass


def make_link(tmp_path) -> tuple[MqttLink, RecordingClient]:
    link = MqttLink(MqttSettings(), "st1", "plant/st1", ResultSpool(tmp_path / "spool.db"))
    client = RecordingClient()
    link.client = client  # type: ignore[assignment]
    return link, client


def connect(link: MqttLink, client: RecordingClient) -> None:
    link._on_connect(client, None, None, ReasonCode(PacketTypes.CONNACK, identifier=0), None)  # type: ignore[arg-type]


def test_error_events_before_the_first_connect_go_out_on_connect(tmp_path):
    link, client = make_link(tmp_path)
    link.publish_json("error", {"error": "corrupt"}, qos=1)
    link.publish_json("stats", {"frames": 1})  # QoS 0: periodic, not worth holding
    assert client.published == []
    assert not link._drained(), "a held event keeps flush() waiting"

    connect(link, client)
    assert ("plant/st1/error", 1) in client.published
    assert ("plant/st1/stats", 0) not in client.published
    assert link._drained()

    link.publish_json("error", {"error": "again"}, qos=1)
    assert client.published[-1] == ("plant/st1/error", 1), "connected: sent at once"


def test_held_events_are_bounded_keeping_the_newest(tmp_path):
    link, client = make_link(tmp_path)
    for index in range(mqtt_link.HELD_EVENTS + 5):
        link.publish_json(f"error{index}", {}, qos=1)
    connect(link, client)
    errors = [topic for topic, _ in client.published if "/error" in topic]
    assert len(errors) == mqtt_link.HELD_EVENTS
    assert errors[0] == "plant/st1/error5"
    assert errors[-1] == f"plant/st1/error{mqtt_link.HELD_EVENTS + 4}"
