"""`/healthz` (JSON, 200 or 503) and `/metrics` (Prometheus) on localhost by default."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]
StatsFn = Callable[[], dict[str, Any]]


class _StatsCollector:
    """Reads the daemon's counters at scrape time (no second set of counters to keep in step)."""

    def __init__(self, stats: StatsFn) -> None:
        self._stats = stats

    def collect(self) -> Any:
        s = self._stats()
        counters = (
            "frames", "results", "pass", "fail", "errors", "dropped", "spool_dropped", "spool_errors",
            "unspooled_dropped", "refused", "unjudged",
        )  # fmt: skip
        for key in counters:
            yield CounterMetricFamily(f"edge_agent_{key}", f"{key} since start", value=s[key])
        yield GaugeMetricFamily("edge_agent_spooled", "results waiting in the spool", value=s["spooled"])
        yield GaugeMetricFamily(
            "edge_agent_unspooled", "results waiting in memory (the spool could not take them)", value=s["unspooled"]
        )
        yield GaugeMetricFamily("edge_agent_fps", "results per second (10 s window)", value=s["fps"])
        yield GaugeMetricFamily(
            "edge_agent_mqtt_connected", "1 when the broker link is up", value=1.0 if s["mqtt_connected"] else 0.0
        )
        if s["inference_ms_p50"] is not None:
            yield GaugeMetricFamily(
                "edge_agent_inference_ms_p50", "median inference ms per frame", value=s["inference_ms_p50"]
            )


class HealthServer:
    def __init__(self, bind: str, port: int, health: HealthFn, stats: StatsFn) -> None:
        registry = CollectorRegistry()
        registry.register(_StatsCollector(stats))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/healthz"):
                    ok, body = health()
                    data, status, kind = json.dumps(body).encode(), 200 if ok else 503, "application/json"
                elif self.path.startswith("/metrics"):
                    data, status, kind = generate_latest(registry), 200, "text/plain; version=0.0.4"
                else:
                    data, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
