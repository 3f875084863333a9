"""Typed hand-offs of the pipeline: a frame and its verdict become a ResultPayload, or an ErrorEvent."""

from __future__ import annotations

import time
import uuid

from edge_agent.capture.sources import Frame
from edge_agent.publish.payloads import ErrorEvent, Latency, ModelRef, ResultPayload, SourceRef, iso_utc
from edge_agent.runtime.inspector import Timing
from edge_agent.runtime.postprocess import Verdict


def source_ref(frame: Frame) -> SourceRef:
    return SourceRef(uri=frame.uri, frame=frame.index, name=frame.name)


def build_result(
    frame: Frame,
    verdict: Verdict,
    *,
    station: str,
    threshold: float,
    model: ModelRef,
    timing: Timing,
    batch_size: int,
    image: str | None,
    image_url: str | None = None,
    result_id: str | None = None,
) -> ResultPayload:
    """The result MES receives; `seq` is 0 until the spool assigns it."""
    return ResultPayload(
        id=result_id or uuid.uuid4().hex,
        seq=0,
        station=station,
        ts=iso_utc(frame.ts),
        verdict="fail" if verdict.verdict == "fail" else "pass",
        label=verdict.label,
        confidence=round(verdict.confidence, 6),
        defect_score=round(verdict.defect_score, 6),
        threshold=threshold,
        scores=verdict.scores,
        model=model,
        source=source_ref(frame),
        part_id=frame.part_id,
        latency_ms=Latency(
            preprocess=round(timing.preprocess_ms / batch_size, 3),
            inference=round(timing.inference_ms / batch_size, 3),
            total=round((time.perf_counter() - frame.captured) * 1000.0, 3),
        ),
        image=image,
        image_url=image_url,
    )


def build_error(frame: Frame, station: str, message: str) -> ErrorEvent:
    return ErrorEvent(
        station=station, ts=iso_utc(frame.ts), source=source_ref(frame), part_id=frame.part_id, error=message
    )
