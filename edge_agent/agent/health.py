"""`/healthz` (JSON, 200 or 503), `/metrics` (Prometheus) and `/archive/…` (archived frames, read-only) on
localhost by default."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from edge_agent.agent.counters import INFERENCE_BUCKETS

log = logging.getLogger(__name__)

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


@dataclass
class MetricsSnapshot:
    """What /metrics shows, read at scrape time from the daemon's own counters."""

    stats: dict[str, Any]  # the MQTT stats payload (counts since start)
    by_verdict_label: dict[tuple[str, str], int] = field(default_factory=dict)
    inference_buckets: list[int] = field(default_factory=list)  # per bucket, the last one is +Inf
    inference_sum_s: float = 0.0
    build: dict[str, str] = field(default_factory=dict)  # version, model, sha256


MetricsFn = Callable[[], MetricsSnapshot]

COUNTERS = {
    # metric name (without _total) -> (stats key, help)
    "edge_agent_frames": ("frames", "frames captured"),
    "edge_agent_errors": ("errors", "frames that could not be judged (error events)"),
    "edge_agent_unjudged": ("unjudged", "frames whose model output was not finite (also in errors)"),
    "edge_agent_dropped_frames": ("dropped", "live frames dropped because inference fell behind"),
    "edge_agent_spool_dropped": ("spool_dropped", "undelivered results dropped because the spool was full"),
    "edge_agent_spool_errors": ("spool_errors", "results the spool could not store (disk full)"),
    "edge_agent_unspooled_dropped": ("unspooled_dropped", "unspooled results dropped beyond spool.unspooled_max"),
    "edge_agent_refused": ("refused", "results the broker refused (MQTT 5 PUBACK failure); kept and retried"),
}
GAUGES = {
    "edge_agent_spooled": ("spooled", "results waiting in the spool"),
    "edge_agent_unspooled": ("unspooled", "results waiting in memory because the spool could not take them"),
    "edge_agent_results_per_second": ("fps", "results per second over the last 10 s"),
}


class _AgentCollector:
    """Prometheus names by convention: *_total counters, base units (seconds), labels instead of names."""

    def __init__(self, metrics: MetricsFn) -> None:
        self._metrics = metrics

    def collect(self) -> Any:
        snapshot = self._metrics()
        s = snapshot.stats
        results = CounterMetricFamily(
            "edge_agent_results", "results published, by verdict and label", labels=("verdict", "label")
        )
        for (verdict, label), count in sorted(snapshot.by_verdict_label.items()):
            results.add_metric((verdict, label), count)
        yield results
        for name, (key, text) in COUNTERS.items():
            yield CounterMetricFamily(name, text, value=s.get(key, 0))
        for name, (key, text) in GAUGES.items():
            yield GaugeMetricFamily(name, text, value=s.get(key, 0))
        yield GaugeMetricFamily(
            "edge_agent_mqtt_connected", "1 when the broker link is up", value=1.0 if s.get("mqtt_connected") else 0.0
        )
        if snapshot.inference_buckets:
            cumulative, buckets = 0, []
            for bound, count in zip((*INFERENCE_BUCKETS, float("inf")), snapshot.inference_buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            yield HistogramMetricFamily(
                "edge_agent_inference_seconds",
                "inference time per frame (the batch's time shared by its frames)",
                buckets=buckets,
                sum_value=snapshot.inference_sum_s,
            )
        if snapshot.build:
            info = GaugeMetricFamily(
                "edge_agent_build_info", "version and model in use (always 1)", labels=tuple(snapshot.build)
            )
            info.add_metric(tuple(snapshot.build.values()), 1.0)
            yield info


class HealthServer:
    def __init__(
        self, bind: str, port: int, health: HealthFn, metrics: MetricsFn, archive_root: Path | None = None
    ) -> None:
        registry = CollectorRegistry()
        registry.register(_AgentCollector(metrics))
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        PlatformCollector(registry=registry)
        root = archive_root.resolve() if archive_root is not None else None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path == "/healthz":
                    ok, body = health()
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", generate_latest(registry))
                elif path.startswith("/archive/") and root is not None:
                    self._archive(root, unquote(path[len("/archive/") :]))
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _archive(self, root: Path, relative: str) -> None:
                """An archived frame, read-only; nothing outside the archive folder (no `..`, no links out)."""
                target = (root / relative).resolve()
                if root not in target.parents or target.suffix.lower() != ".jpg" or not target.is_file():
                    self._send(404, "text/plain", b"not found\n")
                    return
                try:
                    data = target.read_bytes()
                except OSError:  # deleted by the quota between the check and the read
                    self._send(404, "text/plain", b"not found\n")
                    return
                self._send(200, "image/jpeg", data)

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._send(405, "text/plain", b"read-only\n")

            do_PUT = do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

        self.server = ThreadingHTTPServer((bind, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("health on http://%s:%d/healthz and /metrics", self.server.server_address[0], self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
