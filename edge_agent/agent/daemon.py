"""`edge-agent run`: wire settings, model, spool, MQTT, capture and inference; handle signals and systemd."""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.commands import CommandError, CommandRouter, only_keys, optional_str
from edge_agent.agent.health import HealthServer
from edge_agent.agent.pipeline import CaptureLoop, Counters, InferenceLoop, InspectorSlot
from edge_agent.agent.sdnotify import notify, watchdog_interval_s
from edge_agent.agent.settings import AgentSettings, read_password
from edge_agent.capture.sources import FolderSource, Frame, capture_target
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.publish.mqtt_link import MqttLink
from edge_agent.publish.payloads import iso_utc, utc_now
from edge_agent.publish.spool import ResultSpool
from edge_agent.runtime.backends import create_backend, matching_engine
from edge_agent.runtime.bundle import load_bundle
from edge_agent.runtime.inspector import Inspector

log = logging.getLogger(__name__)

ENGINE_BUILD_TIMEOUT_USEC = 900_000_000
DRAIN_TIMEOUT_S = 30.0


def check_source(source: str) -> None:
    """Catch a camera.source that can never work (missing file or folder) at start, as a config error."""
    if source.startswith("dir:"):
        FolderSource.folder(Path(source[4:]).expanduser(), loop=False).close()
    else:
        capture_target(source)  # classifies without opening; a missing file is a ConfigError


def open_inspector(settings: AgentSettings, path: Path) -> Inspector:
    bundle = load_bundle(path)
    model = settings.model
    if model.backend != "onnxruntime" and model.build_engine and matching_engine(bundle) is None:
        from edge_agent.runtime.backends.tensorrt import device_identity

        if device_identity() is not None:
            log.warning("no TensorRT engine for this GPU in %s: building one now (this can take minutes)", path)
            notify(f"EXTEND_TIMEOUT_USEC={ENGINE_BUILD_TIMEOUT_USEC}")
            try:
                from edge_agent.runtime.engine_build import build_engine

                build_engine(path, precision="fp16", max_batch=max(model.max_batch, 1))
                bundle = load_bundle(path)
            except EdgeAgentError as e:
                if model.backend == "tensorrt":
                    raise
                log.warning("engine build failed (%s); using ONNX Runtime", e)
    # The capture thread needs a core of its own: by default inference takes the others.
    threads = model.threads or max(1, (os.cpu_count() or 1) - 1)
    backend = create_backend(bundle, model.backend, max_batch=model.max_batch, threads=threads)
    return Inspector(bundle, backend, model.threshold)


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.counters = Counters()
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.frames: queue.Queue[Frame | None] = queue.Queue(maxsize=settings.camera.queue_size)
        self.triggers: queue.Queue[str | None] = queue.Queue(maxsize=64)
        self.commands: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=256)
        self.health: HealthServer | None = None

    # ---- start -------------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        check_source(s.camera.source)
        inspector = open_inspector(s, s.model.path)
        self.slot = InspectorSlot(inspector)
        self.spool = ResultSpool(s.spool.path, s.spool.max_items, s.spool.sync)
        self.archive = FrameArchive(s.archive)
        self.link = MqttLink(
            s.mqtt, s.station.id, s.topic_prefix, self.spool, read_password(s.mqtt), on_command=self._queue_command
        )
        self._describe_model(inspector)
        self.router = CommandRouter(lambda name, body: self.link.publish_json(name, body, qos=1), utc_now)
        self.router.register("trigger", self._cmd_trigger)
        self.router.register("reload", self._cmd_reload)
        self.router.register("status", lambda args: self.stats())
        self.link.start()
        if s.health.port:
            try:
                self.health = HealthServer(s.health.bind, s.health.port, self.healthz, self.stats)
            except OSError as e:
                self.link.stop("offline")
                raise ConfigError(f"health.port {s.health.port} on {s.health.bind}: {e.strerror}") from e
            self.health.start()
        self.capture = CaptureLoop(s.camera, self.frames, self.stop_event, self.counters, self.triggers)
        self.inference = InferenceLoop(
            self.frames,
            self.slot,
            s.station.id,
            self.spool,
            self.archive,
            self.counters,
            s.model.max_batch,
            self._publish,
            self._report_error,
        )
        self._command_thread = threading.Thread(target=self._command_loop, name="commands", daemon=True)
        self._command_thread.start()
        self.inference.start()
        self.capture.start()
        notify("READY=1\nSTATUS=inspecting")
        log.info(
            "edge-agent %s inspecting %s with %s (%s); results on %s/result",
            __version__,
            s.camera.source,
            inspector.bundle.manifest.name,
            inspector.backend.name,
            s.topic_prefix,
        )

    def _describe_model(self, inspector: Inspector) -> None:
        """What the retained `online` status says about the model (sent again on every reconnect)."""
        manifest = inspector.bundle.manifest
        self.link.online_extra = {
            "version": __version__,
            "backend": inspector.backend.name,
            "model": {"name": manifest.name, "version": manifest.version, "sha256": inspector.bundle.model_sha256},
        }

    # ---- pipeline callbacks ---------------------------------------------------------------------------
    def _publish(self, unspooled: list[dict[str, Any]] | None) -> None:
        if unspooled:
            for result in unspooled:
                self.link.publish_json("result", result, qos=self.settings.mqtt.qos)
        self.link.notify()

    def _report_error(self, frame: Frame, message: str) -> None:
        self.link.publish_json(
            "error",
            {
                "station": self.settings.station.id,
                "ts": iso_utc(frame.ts),
                "source": {"uri": frame.uri, "frame": frame.index, "name": frame.name},
                "error": message,
            },
            qos=1,
        )

    # ---- commands --------------------------------------------------------------------------------------
    def _queue_command(self, name: str, payload: bytes) -> None:
        try:
            self.commands.put_nowait((name, payload))
        except queue.Full:
            log.warning("command %r dropped: too many commands waiting", name[:64])

    def _command_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                name, payload = self.commands.get(timeout=0.5)
            except queue.Empty:
                continue
            self.router.handle(name, payload)

    def _cmd_trigger(self, args: dict[str, Any]) -> dict[str, Any]:
        only_keys(args, {"part_id"})
        part_id = optional_str(args, "part_id")
        if self.settings.camera.trigger != "mqtt":
            raise CommandError("camera.trigger is 'continuous'; triggers are ignored")
        try:
            self.triggers.put_nowait(part_id or "")
        except queue.Full as e:
            raise CommandError("too many triggers waiting") from e
        return {"part_id": part_id}

    def _cmd_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        only_keys(args, {"path"})
        requested = optional_str(args, "path", max_len=4096)
        return self.reload(Path(requested) if requested else None)

    def reload(self, path: Path | None = None) -> dict[str, Any]:
        """Verify and warm up a bundle, then swap it in between batches; the old one stays on failure."""
        model = self.settings.model
        target = (path or model.path).expanduser()
        allowed = (model.models_dir or model.path.parent).expanduser().resolve()
        resolved = (allowed / target).resolve() if not target.is_absolute() else target.resolve()
        if resolved != allowed and allowed not in resolved.parents:
            raise CommandError(f"bundle path must be inside {allowed}")
        try:
            inspector = open_inspector(self.settings, resolved)
        except EdgeAgentError as e:
            raise CommandError(f"reload refused, the current model stays: {e}") from e
        with self.slot.lock:
            self.slot.pending = inspector
        self._describe_model(inspector)
        manifest = inspector.bundle.manifest
        log.info("reload: %s %s verified and warmed up", manifest.name, manifest.version)
        return {"path": str(resolved), "name": manifest.name, "version": manifest.version}

    # ---- health and stats --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        c = self.counters
        p50, p99 = c.inference_percentiles()
        with c.lock:
            counts = {
                "frames": c.frames,
                "results": c.results,
                "pass": c.passed,
                "fail": c.failed,
                "errors": c.errors,
                "dropped": c.dropped,
                "spool_errors": c.spool_errors,
            }
        return {
            "station": self.settings.station.id,
            "ts": utc_now(),
            "uptime_s": round(time.monotonic() - c.started, 1),
            **counts,
            "spooled": len(self.spool),
            "spool_dropped": self.spool.dropped,
            "fps": round(c.fps(), 2),
            "inference_ms_p50": p50,
            "inference_ms_p99": p99,
            "mqtt_connected": self.link.connected.is_set(),
        }

    def progressing(self) -> bool:
        """The threads are alive and looping (not wedged in a backend or a driver call)."""
        now = time.monotonic()
        capture_limit = self.settings.camera.open_timeout_s + self.settings.camera.read_timeout_s + 10
        capture_ok = not self.capture.is_alive() or now - self.capture.heartbeat < capture_limit
        return capture_ok and now - self.inference.heartbeat < 10

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        ok = self.progressing()
        return ok, {
            "ok": ok,
            "camera": self.capture.state,
            "mqtt_connected": self.link.connected.is_set(),
            "spooled": len(self.spool),
            "spool_errors": self.counters.spool_errors,
            "mqtt_error": self.link.last_error,
        }

    # ---- main loop and shutdown ------------------------------------------------------------------------
    def run(self) -> int:
        watchdog = watchdog_interval_s()
        next_ping = next_stats = time.monotonic()
        while not self.stop_event.is_set() and not self.inference.finished.is_set():
            self.stop_event.wait(0.2)
            now = time.monotonic()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                try:
                    self.reload()
                except CommandError as e:
                    log.error("SIGHUP reload: %s", e)
            if watchdog and now >= next_ping and self.progressing():
                notify("WATCHDOG=1")
                next_ping = now + watchdog
            if now >= next_stats:
                self.link.publish_json("stats", self.stats())
                next_stats = now + self.settings.mqtt.stats_interval_s
        return self.shutdown()

    def shutdown(self) -> int:
        notify("STOPPING=1")
        finished = self.capture.state == "finished"
        self.stop_event.set()
        self.capture.join(timeout=self.settings.camera.open_timeout_s + self.settings.camera.read_timeout_s + 2)
        self.inference.join(timeout=DRAIN_TIMEOUT_S)
        delivered = self.link.flush(self.settings.spool.drain_timeout_s)
        self.link.publish_json("stats", self.stats())
        self.link.stop("stopped")
        left = len(self.spool)
        self.spool.close()
        self.slot.current.close()
        if self.health:
            self.health.stop()
        log.info(
            "stopped (%s): %d result(s), %d left in the spool%s",
            "source finished" if finished else "signal",
            self.counters.results,
            left,
            "" if delivered else " for the next start",
        )
        fatal = self.capture.fatal
        if fatal is not None:
            raise fatal
        return 0


def run_daemon(settings: AgentSettings) -> int:
    agent = Agent(settings)
    agent.start()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: agent.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: agent.reload_requested.set())
    return agent.run()
