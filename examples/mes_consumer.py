"""An MES-side consumer of edge-agent results, as docs/mes.md describes: copy it, keep its five rules.

1. A persistent session (MQTT 5 clean start off, a session expiry): the broker keeps results published
   while this consumer is offline and hands them over when it reconnects.
2. QoS 1 subscriptions: at-least-once, so...
3. ...de-duplicate by `id` (a re-delivered result keeps its id).
4. Order by `seq` per station: report gaps (a result not seen yet) and late arrivals (a re-delivery).
5. Check the schema id (`schema` field, or the MQTT 5 user property) before trusting the fields.

Run `python examples/mes_consumer.py --station line1 --client-id mes-line1` (plus --host/--port, --group for
redundant consumers sharing the work, --trigger PART to send one trigger and wait for its reply). It prints
one JSON line per new result. Needs only paho-mqtt.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SCHEMA_MAJOR = "edge-agent/result/1"  # additive changes keep /1; a breaking one would be /2
SEEN_IDS = 100_000  # de-duplication window: far more than a station's spool replays at once


class Results:
    """De-duplicates by id and follows seq per station."""

    def __init__(self) -> None:
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.last_seq: dict[str, int] = {}
        self.lock = threading.Lock()

    def accept(self, result: dict[str, Any]) -> str | None:
        """'new', 'gap' (new, but seqs are missing before it), or None for a duplicate."""
        with self.lock:
            if result["id"] in self.seen:
                return None
            self.seen[result["id"]] = None
            if len(self.seen) > SEEN_IDS:
                self.seen.popitem(last=False)
            station, seq = result["station"], int(result["seq"])
            last = self.last_seq.get(station, 0)
            self.last_seq[station] = max(last, seq)
            return "gap" if last and seq > last + 1 else "new"


def connect(args: argparse.Namespace, on_message: Any) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv5)
    if args.username:
        client.username_pw_set(args.username, args.password)
    if args.ca_file:
        client.tls_set(ca_certs=args.ca_file)
    topic = f"{args.prefix}/result"
    if args.group:
        topic = f"$share/{args.group}/{topic}"  # redundant consumers: each result goes to one of them

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            c.subscribe([(topic, 1), (f"{args.prefix}/error", 1), ("mes/replies/#", 1)])

    client.on_connect = on_connect
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = args.session_expiry
    client.connect(args.host, args.port, 30, clean_start=False, properties=props)
    return client


def send_trigger(client: mqtt.Client, prefix: str, part_id: str, expiry_s: int) -> bytes:
    """A trigger that expires if not delivered in `expiry_s` (a part long gone must not be photographed), with
    a response topic and correlation data to match the reply."""
    correlation = uuid.uuid4().bytes
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = expiry_s
    props.ResponseTopic = f"mes/replies/{prefix.replace('/', '_')}"
    props.CorrelationData = correlation
    client.publish(f"{prefix}/cmd/trigger", json.dumps({"part_id": part_id}), qos=1, properties=props)
    return correlation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--station", default="station-1", help="station.id of the agent")
    parser.add_argument("--prefix", help="topic prefix (default edge-agent/<station>)")
    parser.add_argument("--client-id", required=True, help="stable per consumer: it names the persistent session")
    parser.add_argument("--group", help="shared-subscription group for redundant consumers")
    parser.add_argument("--session-expiry", type=int, default=86_400, help="seconds the broker keeps our queue")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--ca-file")
    parser.add_argument("--trigger", metavar="PART_ID", help="send one trigger and wait for its reply")
    parser.add_argument("--count", type=int, help="stop after this many new results")
    parser.add_argument("--timeout", type=float, default=0, help="stop after this many seconds (0: never)")
    args = parser.parse_args(argv)
    args.prefix = args.prefix or f"edge-agent/{args.station}"
    results = Results()
    done = threading.Event()
    new_count = 0
    replies: dict[bytes, dict[str, Any]] = {}

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal new_count
        payload = json.loads(message.payload)
        if message.topic.startswith("mes/replies/"):
            replies[bytes(getattr(message.properties, "CorrelationData", b""))] = payload
            return
        if message.topic.endswith("/error"):
            print(json.dumps({"error": payload}), flush=True)
            return
        if payload.get("schema") != SCHEMA_MAJOR:
            print(json.dumps({"skipped": "unknown schema", "schema": payload.get("schema")}), flush=True)
            return
        outcome = results.accept(payload)
        if outcome is None:
            return  # a re-delivery: already handled
        new_count += 1
        print(json.dumps({"outcome": outcome, **payload}), flush=True)
        if args.count and new_count >= args.count:
            done.set()

    client = connect(args, on_message)
    client.loop_start()
    try:
        if args.trigger:
            correlation = send_trigger(client, args.prefix, args.trigger, expiry_s=10)
            deadline = time.monotonic() + 15
            while correlation not in replies and time.monotonic() < deadline:
                time.sleep(0.05)
            print(json.dumps({"reply": replies.get(correlation)}), flush=True)
        done.wait(args.timeout or None)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
    return 0 if not args.count or new_count >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
