"""The `edge-agent` command line: parse, configure logging, dispatch, map errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from edge_agent import __version__
from edge_agent.cli.logs import LOG_FORMATS, configure_logging
from edge_agent.errors import EdgeAgentError

log = logging.getLogger("edge_agent")


EXAMPLES = """\
commands, by who uses them:
  on a workstation   trainer synth | distill | teacher | export | evaluate | build-engine
  anywhere           predict (verdicts for images), bench (latency and throughput)
  on the line        validate-config, doctor, run (the daemon)

examples:
  edge-agent trainer distill data/ --out models/press7 --baseline
  edge-agent predict models/press7 parts/ 'more/*.png' --json
  edge-agent validate-config /etc/edge-agent/agent.toml
  edge-agent run --config /etc/edge-agent/agent.toml

docs: README.md (first five minutes), docs/ (configuration, MES contract, reliability, benchmarks)
"""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block is one --help away) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from edge_agent.cli import agent_cmds, runtime_cmds, trainer_cmds

    parser = Parser(
        prog="edge-agent",
        description="Distil defect classifiers into small students (trainer) and run them on the line (run).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="auto",
        help="text, journald (priority prefixes) or json (one object a line); auto: journald under systemd",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    trainer_cmds.register(commands)
    runtime_cmds.register(commands)
    agent_cmds.register(commands)
    return parser


def setup_logging(debug: bool, quiet: bool, log_format: str) -> str:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    chosen = configure_logging(level, log_format)
    if not debug:
        for noisy in ("PIL", "matplotlib", "amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return chosen


def report(message: str, log_format: str) -> None:
    """The closing error line(s) on stderr, in the log's format (journald priority 3, or one JSON object)."""
    if log_format == "json":
        print(json.dumps({"level": "error", "logger": "edge_agent", "message": message}), file=sys.stderr)
    elif log_format == "journald":
        print("\n".join(f"<3>{line}" for line in message.splitlines()), file=sys.stderr)
    else:
        print(message, file=sys.stderr)


def hoist_global_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """Global flags are accepted anywhere on the line, not only before the subcommand."""
    hoisted, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--debug", "-q", "--quiet") or arg.startswith("--log-format="):
            hoisted.append(arg)
        elif arg == "--log-format" and i + 1 < len(argv):
            hoisted += [arg, argv[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return hoisted, rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    hoisted, rest = hoist_global_flags(argv)
    args = parser.parse_args(hoisted + rest)
    log_format = setup_logging(args.debug, args.quiet, args.log_format)
    try:
        code = args.func(args)
        return int(code or 0)
    except EdgeAgentError as e:
        if args.debug:
            log.exception("failed")
        report(f"edge-agent: error: {e}", log_format)
        return e.exit_code
    except KeyboardInterrupt:
        report("edge-agent: interrupted (checkpoints are kept; rerun with --resume where supported)", log_format)
        return 130
    except Exception as e:
        if args.debug:
            raise
        report(f"edge-agent: unexpected error: {type(e).__name__}: {e} (rerun with --debug for details)", log_format)
        return 1
