"""The MQTT payloads MES subscribers rely on (contracts §5); docs/mqtt-*.schema.json are generated from these."""

from __future__ import annotations

import datetime as dt
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RESULT_SCHEMA = "edge-agent/result/1"


def iso_utc(ts: float) -> str:
    """The `ts` format of every payload: ISO 8601, UTC, milliseconds, with a Z."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso_utc(time.time())


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    ts: str = Field(description="capture time, ISO 8601 UTC")
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
    image: str | None = Field(description="archived frame path, or null")


class StatusPayload(Payload):
    """`<prefix>/status`, retained; `offline` is the last will."""

    state: Literal["online", "offline", "stopped"]
    station: str
    ts: str
    version: str | None = None
    model: ModelRef | None = None
    backend: str | None = None


class StatsPayload(Payload):
    """`<prefix>/stats`, periodic counters since start."""

    station: str
    ts: str
    uptime_s: float
    frames: int
    results: int
    passed: int = Field(alias="pass")
    failed: int = Field(alias="fail")
    errors: int = Field(description="frames that could not be decoded or inferred")
    spooled: int = Field(description="results waiting in the spool now")
    dropped: int = Field(description="live frames dropped because inference fell behind")
    spool_dropped: int = Field(description="undelivered results dropped because the spool was full")
    spool_errors: int = Field(description="results that could not be written to the spool")
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
    ts: str


class ErrorEvent(Payload):
    """`<prefix>/error`: a frame that could not be inspected (it produces no result)."""

    station: str
    ts: str
    source: SourceRef
    error: str
