"""A local OpenTelemetry collector's receiving side: a real OTLP/HTTP server on 127.0.0.1 that
decodes each `POST /v1/traces` as OpenTelemetry's `ExportTraceServiceRequest` (protobuf) and
keeps the spans, for tests to assert on.

It answers as a collector does: 200 with an `ExportTraceServiceResponse`, 415 for a body that
is not protobuf, 400 for one that does not decode, 413 past `MAX_BODY_BYTES`; a client gets
`TIMEOUT_S` to send its request. `refuse(n)` makes it answer the next n exports as a collector
that is overloaded or restarting does (503 by default, with a Retry-After if given), keeping
nothing of them.
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

MAX_BODY_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 10.0
Value = str | bool | int | float | None


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector decoded it; ids in lowercase hex, as traceparent writes them."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Value]
    events: list[tuple[str, dict[str, Value]]]
    status_code: int
    status_message: str
    resource: dict[str, Value]
    flags: int
    start_ns: int
    end_ns: int


def _value(any_value: Any) -> Value:
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


def _attributes(pairs: Any) -> dict[str, Value]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        status_code=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        flags=span.flags,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return found


class OtlpReceiver:
    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        """Exports taken (answered 200)."""
        self.refused = 0
        self._refusals: list[tuple[int, str | None]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = TIMEOUT_S

            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self._answer(404, b"")
                    return
                if self.headers.get("content-type") != "application/x-protobuf":
                    self._answer(415, b"")
                    return
                length = int(self.headers.get("content-length") or -1)
                if not 0 <= length <= MAX_BODY_BYTES:
                    self._answer(413, b"")
                    return
                body = self.rfile.read(length)
                with receiver._lock:
                    refusal = receiver._refusals.pop(0) if receiver._refusals else None
                    if refusal is not None:
                        receiver.refused += 1
                if refusal is not None:
                    status, retry_after = refusal
                    self._answer(status, b"", retry_after)
                    return
                try:
                    spans = decode(body)
                except message.DecodeError:
                    self._answer(400, b"")
                    return
                with receiver._lock:
                    receiver._spans.extend(spans)
                    receiver.requests += 1
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self._answer(200, reply)

            def _answer(self, status: int, body: bytes, retry_after: str | None = None) -> None:
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("retry-after", retry_after)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def refuse(self, count: int, *, status: int = 503, retry_after: str | None = None) -> None:
        """Answers the next `count` exports `status` (and `retry_after`) and keeps nothing."""
        with self._lock:
            self._refusals.extend([(status, retry_after)] * count)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, found: Callable[[list[ReceivedSpan]], bool], *, timeout_s: float = 30.0
    ) -> list[ReceivedSpan]:
        """The spans received once `found` says they are enough; AssertionError after the
        timeout, with what did arrive."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if found(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans received in {timeout_s} s: {spans}")
            time.sleep(0.05)
