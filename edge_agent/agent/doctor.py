"""`edge-agent doctor`: what this box can run, one line per check with the fix. It changes nothing on disk."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgeAgentError, install_hint

Check = tuple[str, str, str]  # (ok|warn|fail, what, fix)


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
    """A real MQTT CONNECT with the agent's own TLS settings and credentials, then a clean DISCONNECT."""
    from edge_agent.settings import AgentSettings

    assert isinstance(settings, AgentSettings)
    host, port = settings.mqtt.host, settings.mqtt.port
    outcome = mqtt_connect(settings)
    if outcome is None:
        return [("ok", f"broker {host}:{port} accepted an MQTT {settings.mqtt.protocol} CONNECT", "")]
    return [
        (
            "fail",
            f"broker {host}:{port}: {outcome}",
            "check mqtt.host/port/tls/ca_file, the user name and password file, the broker's ACL "
            "(results are spooled meanwhile)",
        )
    ]


def mqtt_connect(settings: object, timeout: float = 5.0) -> str | None:
    """None when the broker answers CONNACK success; else why not (TLS, refusal reason, timeout)."""
    import ssl
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_agent.publish.mqtt_link import secure
    from edge_agent.settings import AgentSettings, read_password

    assert isinstance(settings, AgentSettings)
    s = settings.mqtt
    protocol = mqtt.MQTTv5 if s.protocol == "5" else mqtt.MQTTv311
    # A client id of its own: never take over (and end) the running agent's session.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-agent-doctor-{os.getpid()}", protocol=protocol)
    answered = threading.Event()
    result: list[str | None] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(f"refused the connection ({reason})" if reason.is_failure else None)
        answered.set()

    client.on_connect = on_connect
    try:
        secure(client, s, read_password(s) if s.username else None)
        client.connect(s.host, s.port, keepalive=10)
    except ssl.SSLCertVerificationError as e:
        return f"TLS certificate not trusted ({e.verify_message})"
    except (OSError, ssl.SSLError, EdgeAgentError) as e:
        return str(e)
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return f"no CONNACK within {timeout:.0f} s"
        return result[0]
    finally:
        client.disconnect()
        client.loop_stop()


def check_storage(settings: object) -> list[Check]:
    """Whether the spool and archive folders can be written, without creating or writing anything."""
    from edge_agent.agent.preflight import unwritable
    from edge_agent.settings import AgentSettings

    assert isinstance(settings, AgentSettings)
    rows: list[Check] = []
    for label, folder in (("spool", settings.spool.path.parent), ("archive", settings.archive.path)):
        problem = unwritable(folder)
        if problem is None:
            rows.append(("ok", f"{label} folder {folder} writable (or can be created)", ""))
        else:
            rows.append(("fail", problem, "systemd's StateDirectory= creates it; else chown it to the service user"))
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
