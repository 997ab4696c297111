"""Spans as OTLP's protobuf: one `ExportTraceServiceRequest`, what an OTLP/HTTP collector takes
at `/v1/traces` with `Content-Type: application/x-protobuf`.

The messages are OpenTelemetry's own (`opentelemetry-proto`), so what a collector decodes is
what the specification defines; the exporter builds one request per batch of spans, away from
the requests that made them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tiers.runtime.tracing import spans

CONTENT_TYPE = "application/x-protobuf"
SCOPE = common_pb2.InstrumentationScope(name="tiers")
_KINDS: Mapping[spans.Kind, int] = {
    "internal": trace_pb2.Span.SPAN_KIND_INTERNAL,
    "server": trace_pb2.Span.SPAN_KIND_SERVER,
    "client": trace_pb2.Span.SPAN_KIND_CLIENT,
    "producer": trace_pb2.Span.SPAN_KIND_PRODUCER,
    "consumer": trace_pb2.Span.SPAN_KIND_CONSUMER,
}
_SAMPLED = 0x01
"""The W3C trace flags of every span exported: only sampled traces have spans."""


def attribute_value(value: spans.AttributeValue) -> common_pb2.AnyValue:
    # bool before int: True is an int too.
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    return common_pb2.AnyValue(string_value=value)


_KEPT_PAIRS = 4096
_pairs: dict[tuple[str, str], common_pb2.KeyValue] = {}
"""Messages of the string attributes seen before: most repeat on every span (the model, the
backend, the operation), and a message copied into a batch costs less than one built anew."""


def key_values(attributes: Mapping[str, spans.AttributeValue]) -> list[common_pb2.KeyValue]:
    found = []
    for pair in attributes.items():
        key, value = pair
        if type(value) is not str:
            found.append(common_pb2.KeyValue(key=key, value=attribute_value(value)))
            continue
        message = _pairs.get(pair)  # type: ignore[arg-type]
        if message is None:
            if len(_pairs) >= _KEPT_PAIRS:
                _pairs.clear()
            message = _pairs[key, value] = common_pb2.KeyValue(
                key=key, value=common_pb2.AnyValue(string_value=value)
            )
        found.append(message)
    return found


def span_message(span: spans.Span) -> trace_pb2.Span:
    message = trace_pb2.Span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_id or b"",
        trace_state=(span.state or b"").decode("latin-1"),
        flags=_SAMPLED,
        name=span.name,
        kind=_KINDS[span.kind],  # type: ignore[arg-type]
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=key_values(span.attributes),
        events=[
            trace_pb2.Span.Event(time_unix_nano=at, name=name, attributes=key_values(attributes))
            for at, name, attributes in span.events
        ],
    )
    if span.error is not None:
        message.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        message.status.message = span.error
    return message


def export_request(
    batch: Iterable[spans.Span], *, resource: Mapping[str, spans.AttributeValue]
) -> bytes:
    """The serialized request for one batch of ended spans of one program (`resource`: its
    `service.name` and the like)."""
    return serialize([span_message(span) for span in batch], resource=resource)


def serialize(
    messages: list[trace_pb2.Span], *, resource: Mapping[str, spans.AttributeValue]
) -> bytes:
    """The serialized request for spans already made into messages (`span_message`)."""
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=key_values(resource)),
                scope_spans=[trace_pb2.ScopeSpans(scope=SCOPE, spans=messages)],
            )
        ]
    )
    serialized: bytes = request.SerializeToString()
    return serialized
