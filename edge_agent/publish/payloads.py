"""The MQTT payloads MES subscribers rely on; docs/schema/mqtt-*.schema.json are generated from these.

Every payload is strict JSON: pydantic writes no NaN or Infinity, and `strict_json` refuses them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict

RESULT_SCHEMA = "edge-agent/result/1"


def iso_utc(ts: float) -> str:
    """The `ts` format of every payload: ISO 8601, UTC, milliseconds, with a Z."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso_utc(time.time())


def strict_json(payload: dict[str, Any]) -> str:
    """JSON that every parser accepts: a non-finite float becomes null instead of a bare NaN."""
    return json.dumps(_finite(payload), default=str, allow_nan=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


DATE_TIME: JsonDict = {"format": "date-time"}
RESULT_CONTENT_TYPE = "application/json"


class Payload(BaseModel):
    # ser_json_inf_nan="null": even a field we forgot to check can never put a bare NaN on the wire.
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")


class ModelRef(Payload):
    name: str
    version: str
    sha256: str = Field(description="sha256 of the model file that produced the result")


class SourceRef(Payload):
    uri: str = Field(description="camera.source as configured")
    frame: int = Field(description="frame index within the source since it was opened")
    name: str | None = Field(None, description="file name, for file and dir: sources")


class Latency(Payload):
    preprocess: float
    inference: float
    total: float = Field(description="capture to decision, milliseconds")


class ResultPayload(Payload):
    """`<prefix>/result`, QoS 1, not retained, one per inspected frame."""

    schema_: Literal["edge-agent/result/1"] = Field("edge-agent/result/1", alias="schema")
    id: str = Field(description="unique; the same on every re-delivery, so MES can de-duplicate")
    seq: int = Field(description="per station, increasing, survives restarts")
    station: str
    ts: str = Field(description="capture time, ISO 8601 UTC", json_schema_extra=DATE_TIME)
    verdict: Literal["pass", "fail"]
    label: str = Field(description="top class")
    confidence: float = Field(description="probability of the top class")
    defect_score: float = Field(description="1 - p(good)")
    threshold: float = Field(description="fail when defect_score >= threshold")
    scores: dict[str, float] = Field(description="class -> probability")
    model: ModelRef
    source: SourceRef
    part_id: str | None = Field(None, description="echoed from cmd/trigger, when given")
    latency_ms: Latency
    image: str | None = Field(description="archived frame path on the box, or null")
    image_url: str | None = Field(
        None, description="where MES fetches the archived frame (read-only HTTP on the box), or null"
    )


class StatusPayload(Payload):
    """`<prefix>/status`, retained; `offline` is the last will."""

    state: Literal["online", "offline", "stopped"]
    station: str
    ts: str = Field(description="when it was sent, ISO 8601 UTC", json_schema_extra=DATE_TIME)
    version: str | None = None
    model: ModelRef | None = None
    backend: str | None = None
    notes: list[str] = Field(default_factory=list, description="what runs differently than configured, and why")


class StatsPayload(Payload):
    """`<prefix>/stats`, periodic counters since start."""

    station: str
    ts: str = Field(description="when it was sent, ISO 8601 UTC", json_schema_extra=DATE_TIME)
    uptime_s: float
    frames: int
    results: int
    passed: int = Field(alias="pass")
    failed: int = Field(alias="fail")
    errors: int = Field(description="frames that could not be judged (error events): undecodable, backend error, ...")
    unjudged: int = Field(0, description="of those, frames whose model output was not finite (NaN, inf)")
    spooled: int = Field(description="results waiting in the spool now")
    dropped: int = Field(description="live frames dropped because inference fell behind")
    spool_dropped: int = Field(description="undelivered results dropped because the spool was full")
    spool_errors: int = Field(description="results that could not be written to the spool")
    unspooled: int = Field(0, description="results waiting in memory because the spool could not take them")
    unspooled_dropped: int = Field(0, description="unspooled results dropped: more than spool.unspooled_max")
    refused: int = Field(0, description="results the broker refused (MQTT 5 PUBACK failure); kept and retried")
    fps: float
    inference_ms_p50: float | None
    inference_ms_p99: float | None
    mqtt_connected: bool


class CommandReply(Payload):
    """`<prefix>/cmd/<name>/reply`."""

    command: str
    ok: bool
    error: str | None = None
    detail: dict[str, object] | None = None
    ts: str = Field(description="when it was sent, ISO 8601 UTC", json_schema_extra=DATE_TIME)


class Request(BaseModel):
    """A command's payload: a JSON object (or empty); unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TriggerRequest(Request):
    """`<prefix>/cmd/trigger`: inspect one frame now (camera.trigger = "mqtt")."""

    part_id: str | None = Field(
        None, min_length=1, max_length=256, description="echoed in the result or error event of this trigger"
    )


class ReloadRequest(Request):
    """`<prefix>/cmd/reload`: verify, warm up and swap in a bundle; the old one stays on any failure."""

    path: str | None = Field(
        None, min_length=1, max_length=4096, description="bundle folder inside model.models_dir (default: model.path)"
    )


class StatusRequest(Request):
    """`<prefix>/cmd/status`: answer with the current counters (the stats payload) as the reply's detail."""


class ErrorEvent(Payload):
    """`<prefix>/error`: a frame that could not be inspected (it produces no result)."""

    station: str
    ts: str = Field(description="when it was sent, ISO 8601 UTC", json_schema_extra=DATE_TIME)
    source: SourceRef
    part_id: str | None = Field(None, description="echoed from cmd/trigger: the part this frame was taken for")
    error: str
