"""`edge-agent doctor`: what this box can run, one line per check with the fix."""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from edge_agent.errors import EdgeAgentError, install_hint

Check = tuple[str, str, str]  # (ok|warn|fail, what, fix)


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_backends() -> list[Check]:
    rows: list[Check] = []
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime as ort

        rows.append(("ok", f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})", ""))
    else:
        rows.append(("fail", "onnxruntime is not installed", f"{install_hint('')} (it is a core dependency)"))
    from edge_agent.runtime.backends.device import device_identity

    identity = device_identity()
    if identity:
        rows.append(("ok", f"TensorRT {identity[0]} on GPU {identity[1]}", ""))
    elif importlib.util.find_spec("tensorrt"):
        rows.append(
            ("warn", "tensorrt is installed but no CUDA GPU is usable", "check the driver and the video/render groups")
        )
    else:
        rows.append(
            (
                "warn",
                "TensorRT backend unavailable (tensorrt/pycuda not importable); CPU inference only",
                install_hint("tensorrt"),
            )
        )
    return rows


def check_settings(config: Path) -> tuple[list[Check], object | None]:
    from edge_agent.settings import load_settings

    try:
        settings = load_settings(config)
    except EdgeAgentError as e:
        return [("fail", str(e), "edge-agent validate-config FILE names the key to fix")], None
    return [("ok", f"settings {config} valid", "")], settings


def check_model(settings: object) -> list[Check]:
    from edge_agent.runtime.backends import matching_engine
    from edge_agent.runtime.bundle import load_bundle
    from edge_agent.settings import AgentSettings

    assert isinstance(settings, AgentSettings)
    try:
        bundle = load_bundle(settings.model.path)
    except EdgeAgentError as e:
        return [("fail", str(e), "copy a complete bundle (every file in its manifest) to model.path")]
    rows: list[Check] = [("ok", f"bundle {bundle.manifest.name} {bundle.manifest.version} verified", "")]
    engine = matching_engine(bundle)
    if engine:
        rows.append(("ok", f"TensorRT engine {engine.file} matches this device", ""))
    elif bundle.manifest.engines:
        rows.append(
            (
                "warn",
                "the bundle's TensorRT engines were built for another GPU or TensorRT version",
                "edge-agent trainer build-engine MODEL_DIR --fp16 on this box (the agent also builds one at start)",
            )
        )
    return rows


def check_camera(settings: object) -> list[Check]:
    from edge_agent.agent.capture_loop import open_camera
    from edge_agent.capture.sources import SourceIdle
    from edge_agent.settings import AgentSettings

    assert isinstance(settings, AgentSettings)
    camera = settings.camera
    try:
        source = open_camera(camera)
        try:
            frame = source.read()
        finally:
            source.close()
    except SourceIdle:
        return [("ok", f"{camera.source} is watched; no new image in it yet", "")]
    except EdgeAgentError as e:
        return [("fail", str(e), "check the cable/URL; for /dev/video* the service user needs the 'video' group")]
    if frame is None or frame.image is None:
        return [("warn", f"camera {camera.source} opened but gave no frame", "check exposure/trigger settings")]
    h, w = frame.image.shape[:2]
    return [("ok", f"camera {camera.source} gives {w}×{h} frames", "")]


def check_broker(settings: object) -> list[Check]:
    from edge_agent.settings import AgentSettings

    assert isinstance(settings, AgentSettings)
    host, port = settings.mqtt.host, settings.mqtt.port
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as e:
        return [
            (
                "fail",
                f"broker {host}:{port} unreachable ({e.strerror or e})",
                "check mqtt.host/port, the firewall, and that the broker runs (results are spooled meanwhile)",
            )
        ]
    return [("ok", f"broker {host}:{port} reachable", "")]


def check_storage(settings: object) -> list[Check]:
    from edge_agent.settings import AgentSettings

    assert isinstance(settings, AgentSettings)
    rows: list[Check] = []
    for label, folder in (("spool", settings.spool.path.parent), ("archive", settings.archive.path)):
        if _writable(folder):
            rows.append(("ok", f"{label} folder {folder} writable", ""))
        else:
            rows.append(
                (
                    "fail",
                    f"{label} folder {folder} not writable",
                    "systemd's StateDirectory= creates it; else chown it to the service user",
                )
            )
    return rows


def run_doctor(config: Path, echo: Callable[[str], None] = print) -> int:
    rows = check_backends()
    settings_rows, settings = check_settings(config)
    rows += settings_rows
    if settings is not None:
        for check in (check_model, check_camera, check_broker, check_storage):
            rows += check(settings)
    rows.append(("ok", f"{os.cpu_count()} CPU core(s)", ""))
    for status, what, fix in rows:
        echo(f"{status.upper():4}  {what}" + (f"\n      fix: {fix}" if fix else ""))
    failed = sum(1 for r in rows if r[0] == "fail")
    echo(f"{len(rows)} checks: {failed} failed, {sum(1 for r in rows if r[0] == 'warn')} warnings")
    return 1 if failed else 0
