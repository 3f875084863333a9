"""The MQTT link (paho-mqtt 2.x): results with QoS 1/2 from the spool, status with a last will, commands.

Results are never published from the pipeline directly: a sender thread reads the spool in seq order,
publishes, and deletes a row only when the broker acknowledges it with success. An MQTT 5 PUBACK with a
failure reason (Not authorized, Quota exceeded, ...) is a refusal, not a delivery: the row stays, the
refusal is counted and logged, and the result is sent again after a back-off. After a reconnect the
sender starts again from the oldest row, so an outage or a restart loses nothing (at-least-once; MES
de-duplicates by `id`). Results the spool could not take (disk full) wait in a bounded memory backlog
and go through the same sender.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.publish.payloads import RESULT_SCHEMA, strict_json, utc_now
from edge_agent.publish.sender import ResultSender
from edge_agent.publish.spool import ResultSpool
from edge_agent.settings import MqttSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyTo:
    """Where a command's reply goes: the request's MQTT 5 response topic and correlation data, if it had them."""

    topic: str | None = None
    correlation: bytes | None = None


CommandHandler = Callable[[str, bytes, ReplyTo], None]

# Error events raised before the first connection (or during an outage) wait in memory, up to this many:
# a corrupt frame in the first second must still reach MES, but events are not worth a disk spool.
HELD_EVENTS = 100
CONNECT_FAILURE_LOG_EVERY_S = 60.0


@dataclass
class _Message:
    topic: str
    payload: str
    qos: int
    retain: bool = False
    properties: Properties | None = None


def secure(client: mqtt.Client, settings: MqttSettings, password: str | None) -> None:
    """TLS (certificate checks always on) and credentials, as configured: the agent and `doctor` alike."""
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            certfile=str(settings.cert_file) if settings.cert_file else None,
            keyfile=str(settings.key_file) if settings.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    if settings.username:
        client.username_pw_set(settings.username, password)


class MqttLink:
    def __init__(
        self,
        settings: MqttSettings,
        station: str,
        prefix: str,
        spool: ResultSpool,
        password: str | None = None,
        on_command: CommandHandler | None = None,
        unspooled_max: int = 1000,
    ) -> None:
        self.settings = settings
        self.station = station
        self.prefix = prefix
        self.spool = spool
        self.on_command = on_command
        self.online_extra: dict[str, Any] = {}
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._last_failure_log: tuple[str, float] | None = None
        self._v5 = settings.protocol == "5"
        self._closing = False
        self._held: deque[_Message] = deque(maxlen=HELD_EVENTS)
        self._held_lock = threading.Lock()  # publish vs _on_connect: nothing held after the connect drains
        self.client = self._make_client(password)
        # MQTT 5 properties: what a consumer can check before parsing (content type, UTF-8, schema id).
        self._json_props = self._properties() if self._v5 else None
        self._result_props = self._properties(("schema", RESULT_SCHEMA)) if self._v5 else None
        self.sender = ResultSender(
            spool,
            self._publish_result,
            self.connected,
            topic=self.topic("result"),
            inflight_max=settings.inflight,
            refused_retry_max_s=settings.refused_retry_max_s,
            unspooled_max=unspooled_max,
        )

    @staticmethod
    def _properties(*user: tuple[str, str], expiry_s: int | None = None) -> Properties:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.PayloadFormatIndicator = 1  # UTF-8 text
        if user:
            props.UserProperty = list(user)
        if expiry_s is not None:
            props.MessageExpiryInterval = expiry_s
        return props

    def _make_client(self, password: str | None) -> mqtt.Client:
        s = self.settings
        client_id = s.client_id or f"edge-agent-{self.station}"
        if self._v5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            # MQTT 3.1.1 has no expiry: a persistent session lasts until the broker drops it.
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=s.session_expiry_s == 0,
            )
        client.will_set(self.topic("status"), self._status("offline"), qos=1, retain=True)
        secure(client, s, password)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        # paho's own default window is 20 in-flight messages; ours is the setting.
        client.max_inflight_messages_set(s.inflight)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _status(self, state: str) -> str:
        return strict_json({"state": state, "station": self.station, "ts": utc_now(), **self.online_extra})

    def start(self) -> None:
        """Connect in the background: a broker that is down at start must not stop inspection."""
        s = self.settings
        if self._v5:
            # A persistent session: commands (cmd/trigger) sent during a broker blip wait for us there.
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            self.client.connect_async(
                s.host, s.port, s.keepalive, clean_start=s.session_expiry_s == 0, properties=props
            )
        else:
            self.client.connect_async(s.host, s.port, s.keepalive)
        self.client.loop_start()
        self.sender.start()

    # paho callbacks run in paho's network thread: keep them short.
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error(
                "MQTT %s:%s refused the connection (%s); retrying with back-off",
                self.settings.host,
                self.settings.port,
                reason_code,
            )
            return
        self.last_error = None
        self._last_failure_log = None  # the next outage is logged at its first failure again
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        client.publish(self.topic("status"), self._status("online"), qos=1, retain=True, properties=self._json_props)
        client.subscribe(self.topic("cmd/+"), qos=1)
        with self._held_lock:
            while self._held:
                self._send(self._held.popleft())
            self.connected.set()
        self.sender.reset.set()
        self.sender.wake.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        """TCP or TLS failed before any CONNACK. paho calls this inside its `except`, so the error is at hand."""
        error = sys.exc_info()[1]
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = f"TLS certificate not trusted ({error.verify_message}); check mqtt.ca_file"
        elif isinstance(error, ssl.SSLError):
            reason = f"TLS handshake failed ({error.reason or error})"
        else:
            reason = str(error) if error is not None else "unknown error"
        self.last_error = f"cannot connect to {self.settings.host}:{self.settings.port}: {reason}"
        now = time.monotonic()
        last = self._last_failure_log
        if last is None or last[0] != reason or now - last[1] >= CONNECT_FAILURE_LOG_EVERY_S:
            # First occurrence, a new reason, or a reminder: a broker that stays away is never silent.
            log.error("MQTT %s; retrying with back-off, results stay in the spool", self.last_error)
            self._last_failure_log = (reason, now)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("MQTT disconnected (%s); results stay in the spool until the broker is back", reason_code)
        self.connected.clear()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_code: Any, _props: Any) -> None:
        # MQTT 5 PUBACK/PUBREC reason codes >= 0x80 are refusals; 3.1.1 acknowledgements always succeed.
        refusal = str(reason_code) if getattr(reason_code, "is_failure", False) else None
        self.sender.acknowledge(mid, refusal)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        name = message.topic[len(self.topic("cmd/")) :]
        if self.on_command is None or not name or "/" in name:
            return
        props = getattr(message, "properties", None)
        reply_to = ReplyTo(
            topic=getattr(props, "ResponseTopic", None) or None,
            correlation=getattr(props, "CorrelationData", None) or None,
        )
        self.on_command(name, bytes(message.payload), reply_to)

    def notify(self) -> None:
        """New rows are in the spool."""
        self.sender.wake.set()

    def _publish_result(self, payload: str) -> tuple[int, int]:
        info = self.client.publish(self.topic("result"), payload, qos=self.settings.qos, properties=self._result_props)
        return int(info.rc), int(info.mid)

    # What the sender counts, for stats and /healthz.
    @property
    def delivered(self) -> int:
        return self.sender.delivered

    @property
    def refused(self) -> int:
        return self.sender.refused

    @property
    def last_refusal(self) -> str | None:
        return self.sender.last_refusal

    @property
    def unspooled(self) -> int:
        return self.sender.unspooled

    @property
    def unspooled_dropped(self) -> int:
        return self.sender.unspooled_dropped

    def add_unspooled(self, results: list[tuple[int, str]]) -> None:
        self.sender.add_unspooled(results)

    # ---- events, replies, stats ----------------------------------------------------------------------
    def publish_json(self, name: str, payload: dict[str, Any], qos: int = 0, retain: bool = False) -> None:
        """Status, stats and error events: not spooled.

        While disconnected, QoS 0 messages (periodic stats) are dropped; QoS 1 ones (error events) wait in
        memory, the newest `HELD_EVENTS`, and go out on the next connect.
        """
        self._publish(_Message(self.topic(name), strict_json(payload), qos, retain, self._json_props))

    def publish_reply(self, name: str, payload: dict[str, Any], reply_to: ReplyTo) -> None:
        """A command's reply: to the request's response topic with its correlation data (MQTT 5), else to
        `cmd/<name>/reply`."""
        props = None
        if self._v5:
            props = self._properties(expiry_s=self.settings.reply_expiry_s)
            if reply_to.correlation is not None:
                props.CorrelationData = reply_to.correlation
        topic = reply_to.topic if self._v5 and reply_to.topic else self.topic(f"cmd/{name}/reply")
        self._publish(_Message(topic, strict_json(payload), 1, False, props))

    def _publish(self, message: _Message) -> None:
        with self._held_lock:
            if self.connected.is_set():
                self._send(message)
            elif message.qos > 0:
                if len(self._held) == self._held.maxlen:
                    log.warning("MQTT down: oldest held %s event dropped", self._held[0].topic)
                self._held.append(message)

    def _send(self, message: _Message) -> None:
        self.client.publish(message.topic, message.payload, message.qos, message.retain, message.properties)

    # ---- shutdown --------------------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Wait until the spool, the unspooled backlog and the held events are empty, at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._drained() or self.sender.died:
                break
            self.sender.wake.set()
            time.sleep(0.05)
        return self._drained()

    def _drained(self) -> bool:
        return len(self.spool) == 0 and not self._held and self.unspooled == 0

    def stop(self, final_state: str = "stopped") -> None:
        if self.connected.is_set():
            info = self.client.publish(
                self.topic("status"), self._status(final_state), qos=1, retain=True, properties=self._json_props
            )
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                log.debug("final status not confirmed")
        if self._held:
            log.warning("%d error event(s) never sent: the broker was not reachable", len(self._held))
        if self.unspooled:
            log.error("%d result(s) that the spool could not take were never delivered", self.unspooled)
        self._closing = True
        self.sender.stop()
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
