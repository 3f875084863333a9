"""`<prefix>/cmd/<name>` handling: validate the payload, act, and always answer on `.../reply`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

MAX_PAYLOAD = 16 * 1024


class CommandError(Exception):
    """The command is malformed or refused; the message goes into the reply."""


@dataclass(frozen=True)
class Command:
    name: str
    args: dict[str, Any]


def parse_command(name: str, payload: bytes, known: set[str]) -> Command:
    """Decode a command payload: empty, or a JSON object. Raises CommandError with a reason."""
    if name not in known:
        raise CommandError(f"unknown command {name!r}; known: {', '.join(sorted(known))}")
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload of {len(payload)} bytes is larger than {MAX_PAYLOAD}")
    if not payload.strip():
        return Command(name, {})
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CommandError(f"payload is not UTF-8 JSON ({type(e).__name__})") from e
    if not isinstance(data, dict):
        raise CommandError(f"payload must be a JSON object, got {type(data).__name__}")
    return Command(name, data)


RequestT = TypeVar("RequestT", bound=BaseModel)


def request(model: type[RequestT], args: dict[str, Any]) -> RequestT:
    """The command's arguments as its request model (the schemas in docs/schema/mqtt-cmd-*.schema.json)."""
    try:
        return model.model_validate(args)
    except ValidationError as e:
        reasons = []
        for error in e.errors():
            key = ".".join(str(p) for p in error["loc"]) or "payload"
            if error["type"] == "extra_forbidden":
                reasons.append(f"unknown field '{key}'; allowed: {sorted(model.model_fields)}")
            else:
                reasons.append(f"'{key}': {error['msg']}")
        raise CommandError("; ".join(reasons)) from None


Handler = Callable[[dict[str, Any]], dict[str, Any] | None]
# A slow command (reload) answers later, from another thread: it gets the args and a `finish(detail, error)`.
Finish = Callable[[dict[str, Any] | None, str | None], object]
DeferredHandler = Callable[[dict[str, Any], Finish], None]
# reply(command name, reply body, where to reply: opaque, from the transport)
Reply = Callable[[str, dict[str, Any], Any], None]


class CommandRouter:
    """Maps command names to handlers; every outcome, good or bad, produces exactly one reply."""

    def __init__(self, reply: Reply, utc_now: Callable[[], str]) -> None:
        self._handlers: dict[str, Handler] = {}
        self._deferred: dict[str, DeferredHandler] = {}
        self._reply = reply
        self._utc_now = utc_now

    def register(self, name: str, handler: Handler) -> None:
        self._check_free(name)
        self._handlers[name] = handler

    def register_deferred(self, name: str, handler: DeferredHandler) -> None:
        self._check_free(name)
        self._deferred[name] = handler

    def _check_free(self, name: str) -> None:
        if name in self._handlers or name in self._deferred:
            raise ValueError(f"command {name!r} registered twice")

    def handle(self, name: str, payload: bytes, reply_to: Any = None) -> dict[str, Any] | None:
        """Run the command; returns the reply sent, or None when a deferred handler will send it."""
        command_name = name[:64]

        def finish(detail: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
            reply = {
                "command": command_name,
                "ok": error is None,
                "error": error,
                "detail": detail if error is None else None,
                "ts": self._utc_now(),
            }
            self._reply(command_name, reply, reply_to)
            return reply

        try:
            command = parse_command(name, payload, set(self._handlers) | set(self._deferred))
            if command.name in self._deferred:
                self._deferred[command.name](command.args, finish)
                return None
            return finish(self._handlers[command.name](command.args), None)
        except CommandError as e:
            log.warning("command %r refused: %s", command_name, e)
            return finish(None, str(e))
        except Exception as e:  # a command must never take the daemon down
            log.exception("command %r failed", command_name)
            return finish(None, f"{type(e).__name__}: {e}")
