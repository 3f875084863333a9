"""The MQTT link (paho-mqtt 2.x): results from the spool with QoS 1, status with a last will, commands.

Results are never published from the pipeline directly: a sender thread reads the spool in seq order,
publishes, and deletes a row only when its PUBACK arrives. After a reconnect it starts again from the
oldest row, so an outage or a restart loses nothing (at-least-once; MES de-duplicates by `id`).
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.agent.settings import MqttSettings
from edge_agent.publish.payloads import utc_now
from edge_agent.publish.spool import ResultSpool

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, bytes], None]

# Error events raised before the first connection (or during an outage) wait in memory, up to this many:
# a corrupt frame in the first second must still reach MES, but events are not worth a disk spool.
HELD_EVENTS = 100


class MqttLink:
    def __init__(
        self,
        settings: MqttSettings,
        station: str,
        prefix: str,
        spool: ResultSpool,
        password: str | None = None,
        on_command: CommandHandler | None = None,
    ) -> None:
        self.settings = settings
        self.station = station
        self.prefix = prefix
        self.spool = spool
        self.on_command = on_command
        self.online_extra: dict[str, Any] = {}
        self.connected = threading.Event()
        self.delivered = 0
        self.last_error: str | None = None
        self._closing = False
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reset = threading.Event()
        self._inflight: dict[int, int] = {}  # mid -> seq, owned by the sender thread
        self._cursor = 0
        self._held: deque[tuple[str, str, int, bool]] = deque(maxlen=HELD_EVENTS)
        self._held_lock = threading.Lock()  # publish_json vs _on_connect: nothing held after the connect drains
        protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id or f"edge-agent-{station}", protocol=protocol
        )
        self.client.will_set(self.topic("status"), self._status("offline"), qos=1, retain=True)
        if settings.tls:
            self.client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if settings.username:
            self.client.username_pw_set(settings.username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        # paho's own default window is 20 in-flight messages; ours is the setting.
        self.client.max_inflight_messages_set(settings.inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _status(self, state: str) -> str:
        return json.dumps({"state": state, "station": self.station, "ts": utc_now(), **self.online_extra})

    def start(self) -> None:
        """Connect in the background: a broker that is down at start must not stop inspection."""
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self.client.loop_start()
        self._sender.start()

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
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        client.publish(self.topic("status"), self._status("online"), qos=1, retain=True)
        client.subscribe(self.topic("cmd/+"), qos=1)
        with self._held_lock:
            while self._held:
                client.publish(*self._held.popleft())
            self.connected.set()
        self._reset.set()
        self._wake.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("MQTT disconnected (%s); results stay in the spool until the broker is back", reason_code)
        self.connected.clear()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        name = message.topic[len(self.topic("cmd/")) :]
        if self.on_command is not None and name and "/" not in name:
            self.on_command(name, bytes(message.payload))

    def notify(self) -> None:
        """New rows are in the spool."""
        self._wake.set()

    def _take_acks(self) -> None:
        done = []
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                done.append(seq)
        if done:
            self.spool.delete(done)
            self.delivered += len(done)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            self._take_acks()
            if not self.connected.is_set():
                continue
            if self._reset.is_set():
                # After a reconnect, resend everything not yet acknowledged, oldest first.
                self._reset.clear()
                self._inflight.clear()
                self._cursor = 0
            room = self.settings.inflight - len(self._inflight)
            if room <= 0:
                continue
            rows = self.spool.pending(self._cursor, min(room, 500))
            for seq, payload in rows:
                info = self.client.publish(self.topic("result"), payload, qos=self.settings.qos)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                self._inflight[info.mid] = seq
                self._cursor = seq
            if len(rows) == min(room, 500):
                self._wake.set()

    def publish_json(self, name: str, payload: dict[str, Any], qos: int = 0, retain: bool = False) -> None:
        """Status, stats, replies and error events: not spooled.

        While disconnected, QoS 0 messages (periodic stats) are dropped; QoS 1 ones (error events) wait in
        memory, the newest `HELD_EVENTS`, and go out on the next connect.
        """
        message = (self.topic(name), json.dumps(payload, default=str), qos, retain)
        with self._held_lock:
            if self.connected.is_set():
                self.client.publish(*message)
            elif qos > 0:
                if len(self._held) == self._held.maxlen:
                    log.warning("MQTT down: oldest held %s event dropped", self._held[0][0])
                self._held.append(message)

    def flush(self, timeout: float) -> bool:
        """Wait until the spool is empty and no event is held, at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._drained():
                return True
            self._wake.set()
            time.sleep(0.05)
        return self._drained()

    def _drained(self) -> bool:
        return len(self.spool) == 0 and not self._held

    def stop(self, final_state: str = "stopped") -> None:
        if self.connected.is_set():
            info = self.client.publish(self.topic("status"), self._status(final_state), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                log.debug("final status not confirmed")
        if self._held:
            log.warning("%d error event(s) never sent: the broker was not reachable", len(self._held))
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
