"""A batch run's span: one per attempt, from its start to its final progress, exported when
it ends (the driver has no event loop to export in the background).

The span continues the trace in the driver's `TRACEPARENT` variable, as OpenTelemetry's
environment carrier says, when whoever started the run set one; else it starts a trace.
Its attributes are the run's figures: records, failures, tokens (GenAI conventions), cost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tiers.runtime.batch import config, progress
from tiers.runtime.tracing import export, genai, spans

TRACEPARENT_ENV = "TRACEPARENT"
TRACESTATE_ENV = "TRACESTATE"


def start(
    settings: config.BatchJobConfig, environ: Mapping[str, str] = os.environ
) -> tuple[spans.Span, list[spans.Span]] | None:
    """The run's span and the list it lands in when it ends; None without tracing, or when
    the trace is not sampled."""
    if settings.tracing is None:
        return None
    ended: list[spans.Span] = []
    tracer = spans.Tracer(ended.append, sample_ratio=settings.tracing.sample_ratio)
    span = tracer.start(
        f"batch {settings.job}",
        kind="internal",
        traceparent=(environ.get(TRACEPARENT_ENV) or "").encode() or None,
        tracestate=(environ.get(TRACESTATE_ENV) or "").encode() or None,
    )
    return None if span is None else (span, ended)


def end(
    settings: config.BatchJobConfig,
    span: spans.Span,
    ended: list[spans.Span],
    final: progress.Progress | None,
    error: BaseException | None,
) -> None:
    """Ends the span with the run's final figures and sends it (within the export timeout)."""
    assert settings.tracing is not None
    attributes = span.attributes
    attributes.update(
        {
            "tiers.batch.job": settings.job,
            "tiers.batch.run": settings.run,
            "gen_ai.operation.name": genai.OPERATIONS[settings.model.route],
            "gen_ai.request.model": settings.model.model,
        }
    )
    if final is not None:
        attributes.update(
            {
                "tiers.batch.state": final.state,
                "tiers.batch.attempt": final.attempt,
                "tiers.batch.records_done": final.done,
                "tiers.batch.records_failed": final.failed,
                "gen_ai.usage.input_tokens": final.tokens_in,
                "gen_ai.usage.output_tokens": final.tokens_out,
                "tiers.cost_usd": float(final.cost_usd),
            }
        )
        if final.total is not None:
            attributes["tiers.batch.records_total"] = final.total
        if final.message and final.state not in ("Succeeded", "Estimated"):
            span.error = final.message
    if error is not None and span.error is None:
        span.error = f"{type(error).__name__}: {error}"
    span.end()
    export.send_now(settings.tracing, ended, resource={"tiers.batch.job": settings.job})
