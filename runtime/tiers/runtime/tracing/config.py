"""Where a data-plane program sends its traces: the contract between `tiers.operator` (which
renders `spec.telemetry` into it) and `tiers.runtime.tracing` (which exports the spans).

It follows the OpenTelemetry SDK's environment settings, by another spelling: `otlp_endpoint`
is `OTEL_EXPORTER_OTLP_ENDPOINT` (spans go to `<it>/v1/traces` over OTLP/HTTP, protobuf),
`sample_ratio` is the `parentbased_traceidratio` sampler's argument, and the queue and batch
sizes are the batch span processor's.
"""

from __future__ import annotations

import pydantic


class TracingConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    otlp_endpoint: str = pydantic.Field(pattern=r"^https?://[^/\s?#@]+(/\S*)?$")
    """A collector's OTLP/HTTP base URL, e.g. http://otel-collector.observability:4318."""
    sample_ratio: float = pydantic.Field(default=1.0, ge=0.0, le=1.0)
    """The share of traces a caller did not start that are recorded; a caller's `traceparent`
    decides for its own trace (its sampled flag), as OpenTelemetry's parent-based sampler does."""
    service_name: str = pydantic.Field(default="tiers-gateway", min_length=1)
    max_queue_spans: int = pydantic.Field(default=2048, ge=1, le=1_000_000)
    """Spans waiting for export; past it new spans are dropped (and counted), never waited on."""
    max_export_batch: int = pydantic.Field(default=512, ge=1, le=100_000)
    export_interval_s: float = pydantic.Field(default=5.0, gt=0, le=3600)
    export_timeout_s: float = pydantic.Field(default=10.0, gt=0, le=600)

    @property
    def traces_url(self) -> str:
        return self.otlp_endpoint.rstrip("/") + "/v1/traces"
