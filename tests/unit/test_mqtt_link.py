"""MqttLink's bookkeeping with paho's client faked (the real broker is in tests/integration): held events,
refused acknowledgements, the unspooled backlog, command replies."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.publish import mqtt_link
from edge_agent.publish.mqtt_link import MqttLink
from edge_agent.publish.spool import ResultSpool
from edge_agent.settings import MqttSettings


class Info:
    def __init__(self, mid: int) -> None:
        self.mid = mid
        self.rc = 0


class RecordingClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, int]] = []
        self.payloads: list[str] = []
        self.properties: list[Any] = []

    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False, properties: Any = None) -> Any:
        self.published.append((topic, qos))
        self.payloads.append(payload)
        self.properties.append(properties)
        return Info(len(self.published))

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


def ack(sender, mid: int, code: int) -> None:
    reason = ReasonCode(PacketTypes.PUBACK, identifier=code)
    sender.acknowledge(mid, str(reason) if reason.is_failure else None)


class Wire:
    """What the sender publishes, with paho's answer (rc 0, a fresh message id)."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def __call__(self, payload: str) -> tuple[int, int]:
        self.sent.append(json.loads(payload)["seq"])
        return 0, len(self.sent)


def make_sender(tmp_path, spooled: int = 0, unspooled_max: int = 1000):
    from edge_agent.publish.sender import ResultSender
    from tests.unit.test_spool import results

    spool = ResultSpool(tmp_path / "spool.db")
    spool.put_many(results(spooled))
    wire = Wire()
    connected = threading.Event()
    connected.set()
    sender = ResultSender(
        spool,
        wire,
        connected,
        topic="plant/st1/result",
        inflight_max=200,
        refused_retry_max_s=30,
        unspooled_max=unspooled_max,
    )
    return sender, wire


def test_a_refused_puback_keeps_the_result_counts_it_and_retries_after_a_back_off(tmp_path):
    sender, wire = make_sender(tmp_path, spooled=3)
    sender.send_ready()
    assert wire.sent == [1, 2, 3]
    mids = {seq: mid for mid, seq in sender.inflight.items()}
    ack(sender, mids[1], 0x00)  # Success
    ack(sender, mids[2], 0x87)  # Not authorized
    ack(sender, mids[3], 0x10)  # No matching subscribers: a success code (< 0x80)
    sender.settle_acks()
    assert [seq for seq, _ in sender.spool.pending(0, 10)] == [2], "only the refused result stays"
    assert sender.delivered == 2
    assert sender.refused == 1
    assert sender.last_refusal == "Not authorized"
    assert sender.hold_until > time.monotonic(), "no resend before the back-off"
    sender.send_ready()
    assert wire.sent == [1, 2, 3], "held back during the back-off"
    sender.hold_until = 0.0
    sender.send_ready()
    assert wire.sent == [1, 2, 3, 2], "sent again after the back-off"
    (mid,) = sender.inflight
    ack(sender, mid, 0x00)
    sender.settle_acks()
    assert len(sender.spool) == 0
    assert sender.last_refusal is None, "the refusal no longer stands once the result got through"


def test_the_refusal_back_off_doubles_up_to_its_limit(tmp_path):
    sender, _ = make_sender(tmp_path, spooled=1)
    waits = []
    for _ in range(10):
        sender.hold_until = 0.0
        sender.send_ready()
        (mid,) = sender.inflight
        ack(sender, mid, 0x97)  # Quota exceeded
        sender.settle_acks()
        waits.append(round(sender.hold_until - time.monotonic()))
    assert waits[:4] == [1, 2, 4, 8]
    assert max(waits) <= 30
    assert sender.refused == 10


def test_unspooled_results_are_bounded_counted_and_sent_with_their_seq(tmp_path):
    sender, wire = make_sender(tmp_path, unspooled_max=3)
    sender.add_unspooled([(seq, json.dumps({"seq": seq})) for seq in range(1, 6)])
    assert sender.unspooled == 3
    assert sender.unspooled_dropped == 2
    sender.send_ready()
    assert wire.sent == [3, 4, 5]
    for mid in list(sender.inflight):
        ack(sender, mid, 0)
    sender.settle_acks()
    assert sender.unspooled == 0


def test_after_a_reconnect_everything_unacknowledged_goes_again_oldest_first(tmp_path):
    sender, wire = make_sender(tmp_path, spooled=3)
    sender.send_ready()
    sender.reset.set()
    sender.send_ready()
    assert wire.sent == [1, 2, 3, 1, 2, 3]


def test_the_link_is_drained_only_when_spool_backlog_and_held_events_are_empty(tmp_path):
    link, _ = make_link(tmp_path)
    assert link._drained()
    link.add_unspooled([(1, "{}")])
    assert not link._drained()


def test_replies_go_to_the_response_topic_with_the_correlation_data(tmp_path):
    from edge_agent.publish.mqtt_link import ReplyTo

    link, client = make_link(tmp_path)
    connect(link, client)
    link.publish_reply("trigger", {"ok": True}, ReplyTo("mes/replies/7", b"req-7"))
    link.publish_reply("trigger", {"ok": True}, ReplyTo())
    assert client.published[-2] == ("mes/replies/7", 1)
    assert client.properties[-2].CorrelationData == b"req-7"
    assert client.published[-1] == ("plant/st1/cmd/trigger/reply", 1)


def test_payloads_are_strict_json(tmp_path):
    from tests.models import strict_loads

    link, client = make_link(tmp_path)
    connect(link, client)
    link.publish_json("stats", {"inference_ms_p50": float("nan"), "fps": float("inf")})
    assert strict_loads(client.payloads[-1]) == {"inference_ms_p50": None, "fps": None}


def test_the_session_is_persistent_with_the_configured_expiry(tmp_path):
    calls = {}
    link = MqttLink(MqttSettings(session_expiry_s=600), "st1", "plant/st1", ResultSpool(tmp_path / "spool.db"))

    class ConnectRecorder:
        def connect_async(self, host, port, keepalive, **kwargs):
            calls.update(kwargs)

        def loop_start(self):
            pass

    link.client = ConnectRecorder()  # type: ignore[assignment]
    link.sender.start = lambda: None  # type: ignore[method-assign]
    link.start()
    assert calls["clean_start"] is False
    assert calls["properties"].SessionExpiryInterval == 600


def test_qos_0_is_not_accepted_for_results():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        MqttSettings(qos=0)  # type: ignore[arg-type]
