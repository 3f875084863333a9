"""`edge-agent run`: wire settings, model, spool, MQTT, capture and inference; supervise them; handle
signals and systemd.

The daemon's promise: no result is lost, no part is passed that was not inspected, and it never stops
quietly — a worker thread that dies stops the watchdog pings at once and ends the process non-zero, so
that systemd restarts it.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.agent.archive import FrameArchive
from edge_agent.agent.capture_loop import CaptureLoop, Trigger
from edge_agent.agent.commands import CommandError, CommandRouter, Finish, request
from edge_agent.agent.counters import Counters
from edge_agent.agent.health import HealthServer, MetricsSnapshot
from edge_agent.agent.inference_loop import InferenceLoop, InspectorSlot
from edge_agent.agent.model_loader import open_inspector
from edge_agent.agent.preflight import source_problem
from edge_agent.agent.reloader import Reloader
from edge_agent.agent.results import build_error
from edge_agent.agent.sdnotify import notify, watchdog_interval_s
from edge_agent.agent.spool_writer import SpoolWriter
from edge_agent.agent.status import agent_stats, health_report, status_line
from edge_agent.capture.sources import Frame, image_stats
from edge_agent.errors import ConfigError
from edge_agent.publish.mqtt_link import MqttLink, ReplyTo
from edge_agent.publish.payloads import ReloadRequest, StatusRequest, TriggerRequest, utc_now
from edge_agent.publish.spool import ResultSpool
from edge_agent.runtime.inspector import Inspector
from edge_agent.settings import AgentSettings, read_password
from edge_agent.threads import Worker

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30.0
EXIT_WORKER_DIED = 1


def check_source(source: str, watch: bool = False) -> None:
    """Catch a camera.source that can never work (missing file or folder) at start, as a config error."""
    if problem := source_problem(source, watch):
        raise ConfigError(f"camera.source {problem}")


def archive_url_base(settings: AgentSettings) -> str | None:
    """Where archived frames are served: the setting, else the health server's address (None when it is off)."""
    if settings.archive.url_base:
        return settings.archive.url_base
    if not settings.health.port:
        return None
    host = settings.health.bind
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (only read: which name to put in URLs)
        host = socket.gethostname()
    return f"http://{host}:{settings.health.port}/archive"


class CommandLoop(Worker):
    """Runs MQTT commands one at a time off paho's network thread; slow ones hand off to the reloader."""

    def __init__(self, router: CommandRouter, stop: threading.Event) -> None:
        super().__init__("commands")
        self.router = router
        self.stop_event = stop
        self.inbox: queue.Queue[tuple[str, bytes, ReplyTo]] = queue.Queue(maxsize=256)

    def put(self, name: str, payload: bytes, reply_to: ReplyTo) -> None:
        try:
            self.inbox.put_nowait((name, payload, reply_to))
        except queue.Full:
            log.warning("command %r dropped: too many commands waiting", name[:64])

    def work(self) -> None:
        while not self.stop_event.is_set():
            self.beat()
            try:
                name, payload, reply_to = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            self.router.handle(name, payload, reply_to)


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.counters = Counters()
        self.stop_event = threading.Event()
        self.frames: queue.Queue[Frame | None] = queue.Queue(maxsize=settings.camera.queue_size)
        self.triggers: queue.Queue[Trigger] = queue.Queue(maxsize=64)
        self.health: HealthServer | None = None
        self.notes: list[str] = []
        self.reloader = Reloader(self.reload, self.stop_event)

    # ---- start -------------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        check_source(s.camera.source, s.camera.watch)
        loaded = open_inspector(s.model, s.model.path)
        self.notes = loaded.notes
        self.slot = InspectorSlot(loaded.inspector)
        self.spool = ResultSpool(s.spool.path, s.spool.max_items, s.spool.sync)
        self.archive = FrameArchive(s.archive, archive_url_base(s))
        router = CommandRouter(self._reply, utc_now)
        router.register("trigger", self._cmd_trigger)
        router.register_deferred("reload", self._cmd_reload)
        router.register("status", self._cmd_status)
        self.commands = CommandLoop(router, self.stop_event)
        self.link = MqttLink(
            s.mqtt,
            s.station.id,
            s.topic_prefix,
            self.spool,
            read_password(s.mqtt),
            on_command=self.commands.put,
            unspooled_max=s.spool.unspooled_max,
        )
        self._describe_model(loaded.inspector)
        self.link.start()
        if s.health.port:
            try:
                self.health = HealthServer(
                    s.health.bind,
                    s.health.port,
                    self.healthz,
                    self.metrics,
                    s.archive.path if self.archive.enabled else None,
                )
            except OSError as e:
                self.link.stop("offline")
                raise ConfigError(f"health.port {s.health.port} on {s.health.bind}: {e.strerror}") from e
            self.health.start()
        done = None
        if s.camera.source.startswith("dir:") and not s.camera.loop:
            done = self.spool.inspected_names(f"dir:{Path(s.camera.source[4:]).expanduser()}")
            if done:
                folder = Path(s.camera.source[4:]).expanduser()
                left = len(set(image_stats(folder)) - done)
                log.log(
                    logging.WARNING if left == 0 and not s.camera.watch else logging.INFO,
                    "%s: %d image(s) inspected before (remembered in %s); %d new to inspect%s",
                    s.camera.source,
                    len(done),
                    s.spool.path,
                    left,
                    "" if left or s.camera.watch else ": nothing to do (a new spool.path starts afresh)",
                )
        self.capture = CaptureLoop(s.camera, self.frames, self.stop_event, self.counters, self.triggers, done)
        self.writer = SpoolWriter(self.spool, self.counters, self.link.notify, self.link.add_unspooled)
        self.inference = InferenceLoop(
            self.frames,
            self.slot,
            s.station.id,
            self.archive,
            self.counters,
            s.model.max_batch,
            self.writer,
            self._report_error,
        )
        for worker in (self.commands, self.reloader, self.writer, self.inference, self.capture):
            worker.start()
        notify("READY=1\nSTATUS=inspecting" + (f" ({'; '.join(self.notes)})" if self.notes else ""))
        log.info(
            "edge-agent %s inspecting %s with %s (%s); results on %s/result",
            __version__,
            s.camera.source,
            loaded.inspector.bundle.manifest.name,
            loaded.inspector.backend.name,
            s.topic_prefix,
        )

    def workers(self) -> list[Worker]:
        return [self.capture, self.inference, self.writer, self.link.sender, self.commands, self.reloader]

    def dead_worker(self) -> Worker | None:
        return next((w for w in self.workers() if w.died), None)

    def _describe_model(self, inspector: Inspector) -> None:
        """What the retained `online` status says about the model (sent again on every reconnect)."""
        manifest = inspector.bundle.manifest
        self.link.online_extra = {
            "version": __version__,
            "backend": inspector.backend.name,
            "model": {"name": manifest.name, "version": manifest.version, "sha256": inspector.bundle.model_sha256},
            "notes": list(self.notes),
        }

    # ---- pipeline callbacks ---------------------------------------------------------------------------
    def _report_error(self, frame: Frame, message: str) -> None:
        event = build_error(frame, self.settings.station.id, message)
        self.link.publish_json("error", event.model_dump(mode="json"), qos=1)
        if frame.key is not None:
            self.spool.mark_inspected([frame.key])

    def _reply(self, name: str, body: dict[str, Any], reply_to: Any) -> None:
        self.link.publish_reply(name, body, reply_to if isinstance(reply_to, ReplyTo) else ReplyTo())

    # ---- commands --------------------------------------------------------------------------------------
    def _cmd_trigger(self, args: dict[str, Any]) -> dict[str, Any]:
        part_id = request(TriggerRequest, args).part_id
        if self.settings.camera.trigger != "mqtt":
            raise CommandError("camera.trigger is 'continuous'; triggers are ignored")
        if self.stop_event.is_set() or not self.capture.is_alive():
            raise CommandError("the agent is stopping; trigger not accepted")
        try:
            self.triggers.put_nowait(Trigger(part_id))
        except queue.Full as e:
            raise CommandError("too many triggers waiting") from e
        return {"part_id": part_id}

    def _cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        request(StatusRequest, args)
        return self.stats()

    def _cmd_reload(self, args: dict[str, Any], finish: Finish) -> None:
        requested = request(ReloadRequest, args).path
        self.reloader.request(Path(requested) if requested else None, finish)

    def request_reload(self) -> None:
        """SIGHUP: queue a reload of the configured bundle (never run on the signal's thread)."""
        try:
            self.reloader.request(None)
        except CommandError:
            log.warning("SIGHUP ignored: reloads are already waiting")

    def reload(self, path: Path | None = None) -> dict[str, Any]:
        """Verify and warm up a bundle, then swap it in between batches; the old one stays on failure."""
        model = self.settings.model
        target = (path or model.path).expanduser()
        allowed = (model.models_dir or model.path.parent).expanduser().resolve()
        resolved = (allowed / target).resolve() if not target.is_absolute() else target.resolve()
        if resolved != allowed and allowed not in resolved.parents:
            raise CommandError(f"bundle path must be inside {allowed}")
        try:
            loaded = open_inspector(model, resolved)
        except Exception as e:
            raise CommandError(f"reload refused, the current model stays: {e}") from e
        self.slot.offer(loaded.inspector)
        self.notes = loaded.notes
        self._describe_model(loaded.inspector)
        manifest = loaded.inspector.bundle.manifest
        log.info("reload: %s %s verified and warmed up", manifest.name, manifest.version)
        return {"path": str(resolved), "name": manifest.name, "version": manifest.version}

    # ---- health and stats --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return agent_stats(self.settings.station.id, self.counters, self.spool, self.link)

    def metrics(self) -> MetricsSnapshot:
        bundle = self.slot.current.bundle
        with self.counters.lock:
            by_label = dict(self.counters.by_verdict_label)
            buckets = list(self.counters.inference_buckets)
            total = self.counters.inference_sum_s
        build = {"version": __version__, "model": bundle.manifest.name, "sha256": bundle.model_sha256}
        return MetricsSnapshot(self.stats(), by_label, buckets, total, build)

    def progressing(self) -> bool:
        """The pipeline threads are alive and looping (not wedged in a backend or a driver call)."""
        now = time.monotonic()
        camera = self.settings.camera
        capture_limit = camera.open_timeout_s + camera.read_timeout_s + 10
        capture_ok = not self.capture.is_alive() or now - self.capture.heartbeat < capture_limit
        inference_ok = self.inference.finished.is_set() or now - self.inference.heartbeat < 10
        return capture_ok and inference_ok and self.dead_worker() is None

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        return health_report(
            self.progressing(), self.workers(), self.notes, self.capture.state, self.counters, self.spool, self.link
        )

    # ---- main loop and shutdown ------------------------------------------------------------------------
    def run(self) -> int:
        watchdog = watchdog_interval_s()
        next_ping = next_stats = time.monotonic()
        while not self.stop_event.is_set() and not self.inference.finished.is_set():
            self.stop_event.wait(0.2)
            dead = self.dead_worker()
            if dead is not None:
                # No more watchdog pings from here on; exit non-zero so that systemd restarts us.
                notify(f"STATUS=worker {dead.name!r} died: {dead.crash!r}; stopping")
                log.critical("stopping: the %s thread died (%r); exit %d", dead.name, dead.crash, EXIT_WORKER_DIED)
                self.shutdown()
                return EXIT_WORKER_DIED
            now = time.monotonic()
            if watchdog and now >= next_ping and self.progressing():
                notify("WATCHDOG=1")
                next_ping = now + watchdog
            if now >= next_stats:
                stats = self.stats()
                self.link.publish_json("stats", stats)
                notify(f"STATUS={status_line(stats, self.healthz()[1])}")
                next_stats = now + self.settings.mqtt.stats_interval_s
        code = self.shutdown()
        dead = self.dead_worker()
        if dead is not None:
            log.critical("the %s thread died (%r); exit %d", dead.name, dead.crash, EXIT_WORKER_DIED)
            return EXIT_WORKER_DIED
        return code

    def shutdown(self) -> int:
        notify("STOPPING=1")
        finished = self.capture.state == "finished"
        self.stop_event.set()
        self.capture.join(timeout=self.settings.camera.open_timeout_s + self.settings.camera.read_timeout_s + 2)
        self.inference.join(timeout=DRAIN_TIMEOUT_S)
        self.writer.close()
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
    if threading.current_thread() is threading.main_thread():
        # Handlers first: start-up can take minutes (an engine build), and a SIGTERM or SIGHUP during it
        # must be honoured, not kill the process with the default action.
        signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: agent.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: agent.request_reload())
    agent.start()
    return agent.run()
