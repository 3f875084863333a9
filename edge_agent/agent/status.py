"""What the daemon says about itself: the stats payload, and /healthz."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from edge_agent.agent.counters import Counters
from edge_agent.publish.mqtt_link import MqttLink
from edge_agent.publish.payloads import utc_now
from edge_agent.publish.spool import ResultSpool
from edge_agent.threads import Worker


def agent_stats(station: str, counters: Counters, spool: ResultSpool, link: MqttLink) -> dict[str, Any]:
    """The `<prefix>/stats` payload (StatsPayload), also behind /metrics and cmd/status."""
    c = counters
    p50, p99 = c.inference_percentiles()
    with c.lock:
        counts = {
            "frames": c.frames,
            "results": c.results,
            "pass": c.passed,
            "fail": c.failed,
            "errors": c.errors,
            "unjudged": c.unjudged,
            "dropped": c.dropped,
            "spool_errors": c.spool_errors,
        }
    return {
        "station": station,
        "ts": utc_now(),
        "uptime_s": round(time.monotonic() - c.started, 1),
        **counts,
        "spooled": len(spool),
        "spool_dropped": spool.dropped,
        "unspooled": link.unspooled,
        "unspooled_dropped": link.unspooled_dropped,
        "refused": link.refused,
        "fps": round(c.fps(), 2),
        "inference_ms_p50": p50,
        "inference_ms_p99": p99,
        "mqtt_connected": link.connected.is_set(),
    }


def health_report(
    progressing: bool,
    workers: Sequence[Worker],
    notes: Sequence[str],
    camera_state: str,
    counters: Counters,
    spool: ResultSpool,
    link: MqttLink,
) -> tuple[bool, dict[str, Any]]:
    """(ok, body): ok is False when a worker died or the pipeline is wedged (systemd should restart us).

    Problems a restart would not fix (the broker refuses results, the spool cannot take them) keep `ok`
    true and are listed under `degraded`, so an operator sees them without the box restarting in a loop.
    """
    dead = [w.name for w in workers if w.died]
    ok = progressing and not dead
    degraded = list(notes)
    if link.last_refusal:
        degraded.append(f"broker refuses results: {link.last_refusal}")
    if link.unspooled:
        degraded.append(f"{link.unspooled} result(s) in memory: the spool cannot take them")
    if link.last_error:
        degraded.append(link.last_error)
    return ok, {
        "ok": ok,
        "status": "failing" if not ok else "degraded" if degraded else "ok",
        "degraded": degraded,
        "dead_workers": dead,
        "camera": camera_state,
        "mqtt_connected": link.connected.is_set(),
        "spooled": len(spool),
        "spool_errors": counters.spool_errors,
        "unspooled": link.unspooled,
        "unspooled_dropped": link.unspooled_dropped,
        "refused": link.refused,
        "mqtt_refusal": link.last_refusal,
        "mqtt_error": link.last_error,
    }


def status_line(stats: dict[str, Any], health: dict[str, Any]) -> str:
    """What `systemctl status edge-agent` shows: the counts that matter and anything degraded."""
    line = (
        f"{stats['results']} results ({stats['fail']} fail), {stats['errors']} errors, "
        f"{stats['fps']:.1f}/s; spool {stats['spooled']}; MQTT {'up' if stats['mqtt_connected'] else 'DOWN'}"
    )
    if health.get("degraded"):
        line += "; degraded: " + "; ".join(health["degraded"])
    return line.replace("\n", " ")
