"""`edge-agent run`, `validate-config`, `doctor`: the edge-box commands. No torch here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/edge-agent/agent.toml")


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run", help="the inspection daemon", description="Capture frames, inspect them, publish results over MQTT."
    )
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"settings file ({DEFAULT_CONFIG})")
    run.set_defaults(func=cmd_run)

    validate = commands.add_parser(
        "validate-config",
        help="check a settings file",
        description="Exit 0 on a valid file; else name the bad key and exit 2.",
    )
    validate.add_argument("file", type=Path, help="settings file (TOML)")
    validate.set_defaults(func=cmd_validate)

    doctor = commands.add_parser(
        "doctor",
        help="what this box can run, with fixes",
        description="Check backends, GPU, TensorRT, camera, broker and bundle.",
    )
    doctor.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"settings file ({DEFAULT_CONFIG})")
    doctor.set_defaults(func=cmd_doctor)


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent.daemon import run_daemon
    from edge_agent.settings import load_settings

    return run_daemon(load_settings(args.config))


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_agent.settings import load_settings

    settings = load_settings(args.file)
    print(
        f"{args.file}: valid (station {settings.station.id}, camera {settings.camera.source}, "
        f"model {settings.model.path}, broker {settings.mqtt.host}:{settings.mqtt.port})"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge_agent.agent.doctor import run_doctor

    return run_doctor(args.config)
