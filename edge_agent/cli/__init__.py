"""The `edge-agent` command line: parse, configure logging, dispatch, map errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from edge_agent import __version__
from edge_agent.errors import EdgeAgentError

log = logging.getLogger("edge_agent")


def build_parser() -> argparse.ArgumentParser:
    from edge_agent.cli import agent_cmds, runtime_cmds, trainer_cmds

    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Distil defect classifiers into small students (trainer) and run them on the line (run).",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    trainer_cmds.register(commands)
    runtime_cmds.register(commands)
    agent_cmds.register(commands)
    return parser


def configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if not debug:
        for noisy in ("PIL", "matplotlib", "amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Global flags are accepted anywhere on the line, not only before the subcommand.
    hoisted = [a for a in argv if a in ("--debug", "-q", "--quiet")]
    rest = [a for a in argv if a not in hoisted]
    args = parser.parse_args(hoisted + rest)
    configure_logging(args.debug, args.quiet)
    try:
        code = args.func(args)
        return int(code or 0)
    except EdgeAgentError as e:
        if args.debug:
            log.exception("failed")
        print(f"edge-agent: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edge-agent: interrupted (checkpoints are kept; rerun with --resume where supported)", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(
            f"edge-agent: unexpected error: {type(e).__name__}: {e} (rerun with --debug for details)", file=sys.stderr
        )
        return 1
