"""`edge-agent run`, `validate-config`, `doctor`: the edge-box commands. No torch here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/edge-agent/agent.toml")


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="the inspection daemon",
        description="Capture frames, inspect them, publish results over MQTT.",
        epilog="examples:\n  edge-agent run --config /etc/edge-agent/agent.toml\n"
        "  EDGE_AGENT_MQTT__HOST=broker.local edge-agent --log-format json run --config agent.toml\n"
        "exit codes: 0 finished, 2 unusable settings or bundle (not restarted), 1 a worker died (restarted)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"settings file ({DEFAULT_CONFIG})")
    run.set_defaults(func=cmd_run)

    validate = commands.add_parser(
        "validate-config",
        help="check a settings file",
        description="Every check `run` makes before opening anything (keys and values, files, the bundle, the "
        "camera source, folders), all problems at once with where each value came from; exit 0 or 2.",
        epilog="example:\n  edge-agent validate-config /etc/edge-agent/agent.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def checked_settings(path: Path) -> tuple[Any, list[Any]]:
    """Settings and every problem with them: validation, then the checks `run` makes before opening anything."""
    from edge_agent.agent.preflight import preflight
    from edge_agent.settings import check_settings

    settings, problems, best_effort = check_settings(path)
    if best_effort is not None:
        # Keys already reported are left out of the best effort (defaults stand in): check the rest only.
        reported = {p.key for p in problems}
        problems += [p for p in preflight(best_effort, str(path)) if p.key not in reported]
    return settings, problems


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent.daemon import run_daemon
    from edge_agent.errors import ConfigError
    from edge_agent.settings import describe

    settings, problems = checked_settings(args.config)
    if problems:
        raise ConfigError(describe(problems))
    return run_daemon(settings)


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_agent.errors import ConfigError
    from edge_agent.settings import describe

    settings, problems = checked_settings(args.file)
    if problems:
        raise ConfigError(describe(problems))
    print(
        f"{args.file}: valid (station {settings.station.id}, camera {settings.camera.source}, "
        f"model {settings.model.path}, broker {settings.mqtt.host}:{settings.mqtt.port}); "
        "files, bundle, camera source and folders checked"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge_agent.agent.doctor import run_doctor

    return run_doctor(args.config)
