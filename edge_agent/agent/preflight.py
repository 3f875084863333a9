"""Every check `run` makes before it opens anything, shared with `validate-config`: files that must exist
and be readable, a bundle that verifies, a camera source that parses, folders that can be written.

It reads, never writes: nothing is created, no socket is opened, no camera is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from edge_agent.errors import EdgeAgentError
from edge_agent.settings import AgentSettings, Problem, origin_of


def preflight(settings: AgentSettings, file_origin: str, environ: dict[str, str] | None = None) -> list[Problem]:
    env = dict(os.environ if environ is None else environ)

    def problem(section: str, key: str, message: str) -> Problem:
        return Problem(f"{section}.{key}", origin_of((section, key), file_origin, env), message)

    problems: list[Problem] = []
    mqtt = settings.mqtt
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        path = getattr(mqtt, key)
        if path is not None and (message := unreadable(path)):
            problems.append(problem("mqtt", key, message))
    if (mqtt.cert_file is None) != (mqtt.key_file is None):
        problems.append(problem("mqtt", "cert_file", "mutual TLS needs both cert_file and key_file"))
    if (mqtt.ca_file or mqtt.cert_file) and not mqtt.tls:
        problems.append(problem("mqtt", "tls", "ca_file/cert_file are set but tls = false: they would be ignored"))
    model = settings.model
    if not model.path.expanduser().is_dir():
        problems.append(problem("model", "path", f"{model.path}: no such bundle folder"))
    else:
        from edge_agent.runtime.bundle import load_bundle

        try:
            load_bundle(model.path)
        except EdgeAgentError as e:
            problems.append(problem("model", "path", str(e)))
    if model.models_dir is not None and not model.models_dir.expanduser().is_dir():
        problems.append(problem("model", "models_dir", f"{model.models_dir}: no such folder"))
    if message := source_problem(settings.camera.source, settings.camera.watch):
        problems.append(problem("camera", "source", message))
    if message := unwritable(settings.spool.path.expanduser().parent):
        problems.append(problem("spool", "path", message))
    if settings.archive.save != "none" and (message := unwritable(settings.archive.path.expanduser())):
        problems.append(problem("archive", "path", message))
    return problems


def unreadable(path: Path) -> str | None:
    path = path.expanduser()
    if not path.exists():
        return f"{path}: file not found"
    if not path.is_file():
        return f"{path}: not a file"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable by this user"
    return None


def unwritable(folder: Path) -> str | None:
    """None when `folder` exists and is writable, or could be created (its nearest existing parent is)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{folder}: {probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{folder}: {probe} is not writable by this user"
    return None


def source_problem(source: str, watch: bool) -> str | None:
    """Why `camera.source` can never work, or None (a camera that is merely unplugged now is not a problem)."""
    if source.startswith("dir:"):
        folder = Path(source[4:]).expanduser()
        if not folder.is_dir():
            return f"{source}: folder not found"
        if not watch and not any(p.is_file() for p in folder.iterdir()):
            return f"{source}: the folder is empty (watch = true waits for images)"
        return None
    if source.isdigit() or source.startswith("gst:"):
        return None if source != "gst:" else "gst: needs a pipeline ending in appsink"
    if "://" in source:
        url = urlparse(source)
        if url.scheme not in ("rtsp", "rtsps", "http", "https") or not url.hostname:
            return f"{source}: not an rtsp:// or http:// camera address"
        return None
    if not Path(source).expanduser().is_file():
        return f"{source!r}: no such file, and not a device index, URL, dir: or gst:"
    return None
