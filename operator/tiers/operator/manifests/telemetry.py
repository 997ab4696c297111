"""Where the data plane sends its traces: a resource's spec.telemetry, else the chart's default
(values `telemetry.*`, which the operator reads from its environment at start), rendered into
the program's config as `tiers.runtime.tracing.config.TracingConfig`."""

from __future__ import annotations

from collections.abc import Mapping

import pydantic

from tiers.api import common
from tiers.runtime.tracing import config

OTLP_ENDPOINT_ENV = "TIERS_OTLP_ENDPOINT"
SAMPLING_RATIO_ENV = "TIERS_TRACES_SAMPLING_RATIO"
MAX_QUEUE_SPANS_ENV = "TIERS_TRACES_MAX_QUEUE_SPANS"


def default_from(environ: Mapping[str, str]) -> common.Telemetry | None:
    """The chart's default; None when it names no collector. A bad value stops the operator
    at start with pydantic's message naming the field, as a bad chart value should."""
    endpoint = environ.get(OTLP_ENDPOINT_ENV, "").strip()
    if not endpoint:
        return None
    given = {
        "otlpEndpoint": endpoint,
        "samplingRatio": environ.get(SAMPLING_RATIO_ENV, "1").strip(),
        "maxQueueSpans": environ.get(MAX_QUEUE_SPANS_ENV, str(common.MAX_QUEUE_SPANS)).strip(),
    }
    try:
        return common.Telemetry.model_validate(given)
    except pydantic.ValidationError as error:
        names = ", ".join((OTLP_ENDPOINT_ENV, SAMPLING_RATIO_ENV, MAX_QUEUE_SPANS_ENV))
        raise ValueError(f"the chart's telemetry ({names}): {error}") from None


def tracing(
    telemetry: common.Telemetry | None, *, service_name: str
) -> config.TracingConfig | None:
    """spec.telemetry (or the default) as a data-plane program reads it."""
    if telemetry is None:
        return None
    return config.TracingConfig(
        otlp_endpoint=telemetry.otlp_endpoint,
        sample_ratio=float(telemetry.sampling_ratio),
        max_queue_spans=telemetry.max_queue_spans,
        service_name=service_name,
    )
