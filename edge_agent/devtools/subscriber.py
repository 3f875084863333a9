"""An MES-like subscriber for tests, the demo and benchmarks: a persistent QoS 1 session on `prefix/#`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Subscriber:
    def __init__(
        self,
        port: int,
        prefix: str,
        protocol: str = "5",
        host: str = "127.0.0.1",
        on_result: Callable[[dict[str, Any]], None] | None = None,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []
        self.arrivals: list[float] = []
        self._raw_results: list[bytes] = []
        self._parsed: list[dict[str, Any]] = []
        self._result_topic = f"{prefix}/result"
        self.on_result = on_result
        self._lock = threading.RLock()
        self.connected = threading.Event()
        proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        kwargs: dict[str, Any] = {} if proto == mqtt.MQTTv5 else {"clean_session": False}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"mes-{uuid.uuid4().hex[:8]}", protocol=proto, **kwargs
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.reconnect_delay_set(1, 1)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        if username:
            self.client.username_pw_set(username, password)
        self._host, self._port, self._proto = host, port, proto

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{self.prefix}/#", qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        # Ready means subscribed (SUBACK), not merely connected: an agent started right after `start()`
        # may publish its first non-spooled event (an error) before a pending SUBSCRIBE is processed.
        if not any(r.is_failure for r in reasons):
            self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Results are parsed lazily: a benchmark's subscriber must not eat the CPU the agent is measured on.
        with self._lock:
            payload = bytes(message.payload)
            self.messages.append((message.topic, payload))
            if message.topic == self._result_topic:
                self._raw_results.append(payload)
                self.arrivals.append(time.time())
                if self.on_result:
                    self.on_result(self.results[-1])

    @property
    def results(self) -> list[dict[str, Any]]:
        with self._lock:
            while len(self._parsed) < len(self._raw_results):
                self._parsed.append(json.loads(self._raw_results[len(self._parsed)]))
            return self._parsed

    def start(self) -> Subscriber:
        if self._proto == mqtt.MQTTv5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600  # keep our queue across broker restarts, like an MES would
            self.client.connect(self._host, self._port, 30, clean_start=False, properties=props)
        else:
            self.client.connect(self._host, self._port, 30)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("subscriber could not connect")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def topic_payloads(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t == f"{self.prefix}/{name}"]

    def wait_for(self, predicate: Callable[[Subscriber], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False

    def unique_seqs(self) -> list[int]:
        with self._lock:
            return sorted({r["seq"] for r in self.results})
