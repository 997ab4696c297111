"""Spans and the W3C trace context they continue and pass on.

A `Tracer` starts a request's span from the caller's `traceparent` (or a new trace, sampled at
the configured ratio) and hands every ended span to its sink (`export.Exporter`). A span is a
plain slotted object: making one, setting its attributes and ending it are a few attribute
writes, with no context variables, processors or locks, because the gateway's request path is
counted in Python calls. A trace that is not sampled gets no span at all (None), so it costs
the caller one `is None` test per place it would record something.
"""

from __future__ import annotations

import binascii
import random
import re
import time
from collections.abc import Callable
from typing import Literal

AttributeValue = str | bool | int | float
Attributes = dict[str, AttributeValue]
Kind = Literal["internal", "server", "client", "producer", "consumer"]

_ID_BITS = 64
_TRACEPARENT = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL
)
"""version-trace-parent-flags, and what a later version adds after a dash (one C call: the
header is read on every request and stream event that carries one)."""
_ZERO_TRACE, _ZERO_PARENT = b"0" * 32, b"0" * 16


class TraceContext:
    """A caller's `traceparent` as W3C Trace Context reads it (version 00, or a later version's
    first four fields), with its `tracestate` carried along untouched."""

    __slots__ = ("sampled", "span_id", "state", "trace_id")

    def __init__(self, trace_id: bytes, span_id: bytes, *, sampled: bool, state: bytes | None):
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self.state = state


def parse_traceparent(value: bytes | None, state: bytes | None = None) -> TraceContext | None:
    """The context in a `traceparent` header; None when it is absent or malformed (then the
    request starts a trace of its own, as the specification says)."""
    found = _TRACEPARENT.fullmatch(value) if value is not None else None
    if found is None:
        return None
    version, trace, parent, flags, rest = found.groups()
    if (
        version == b"ff"
        or (version == b"00" and rest is not None)
        or trace == _ZERO_TRACE
        or parent == _ZERO_PARENT
    ):
        return None
    return TraceContext(
        binascii.a2b_hex(trace), binascii.a2b_hex(parent), sampled=bool(int(flags, 16) & 1),
        state=state,
    )  # fmt: skip


def passed_on(traceparent: bytes | None, tracestate: bytes | None = None) -> dict[str, str] | None:
    """The headers that pass a caller's trace context on as it came, sampled flag and all, from a
    call this program records no span of (W3C Trace Context: a context is passed on even when
    the trace is not recorded); None when there is none or it is malformed."""
    if traceparent is None or parse_traceparent(traceparent) is None:
        return None
    headers = {"traceparent": traceparent.decode("latin-1")}
    if tracestate:
        headers["tracestate"] = tracestate.decode("latin-1")
    return headers


class Span:
    __slots__ = (
        "_tracer",
        "attributes",
        "end_ns",
        "error",
        "events",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "state",
        "trace_id",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        *,
        kind: Kind,
        trace_id: bytes,
        parent_id: bytes | None,
        state: bytes | None = None,
    ) -> None:
        self._tracer = tracer
        self.trace_id = trace_id
        self.span_id = tracer.new_span_id()
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.state = state
        self.attributes: Attributes = {}
        self.events: list[tuple[int, str, Attributes]] = []
        self.error: str | None = None
        """Why the operation failed (the span's status is then ERROR); None: it did not."""
        self.start_ns = time.time_ns()
        self.end_ns = 0

    def child(self, name: str, *, kind: Kind = "internal") -> Span:
        return Span(
            self._tracer,
            name,
            kind=kind,
            trace_id=self.trace_id,
            parent_id=self.span_id,
            state=self.state,
        )

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        self.events.append((time.time_ns(), name, attributes or {}))

    def headers(self) -> dict[str, str]:
        """The trace context to send with a call this span makes (W3C `traceparent`, and the
        caller's `tracestate` as it came)."""
        parent = {"traceparent": f"00-{self.trace_id.hex()}-{self.span_id.hex()}-01"}
        if self.state:
            parent["tracestate"] = self.state.decode("latin-1")
        return parent

    def end(self) -> None:
        if not self.end_ns:
            self.end_ns = time.time_ns()
            self._tracer.sink(self)


class Tracer:
    """Starts the spans of one program; `sink` takes each span once it ends."""

    def __init__(
        self,
        sink: Callable[[Span], None],
        *,
        sample_ratio: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self._rng = rng or random.Random()
        # As OpenTelemetry's TraceIdRatioBased: a trace is kept when the low 64 bits of its id
        # fall under the bound, so every program that samples by ratio keeps the same traces.
        self._bound = round(sample_ratio * (1 << _ID_BITS))

    def new_span_id(self) -> bytes:
        return (self._rng.getrandbits(_ID_BITS) or 1).to_bytes(8)

    def start(
        self,
        name: str,
        *,
        kind: Kind = "server",
        traceparent: bytes | None = None,
        tracestate: bytes | None = None,
    ) -> Span | None:
        """A span continuing the caller's trace, or a new trace's root span; None when the
        trace is not sampled (the caller said so, or the ratio left it out)."""
        caller = parse_traceparent(traceparent, tracestate) if traceparent else None
        if caller is not None:
            if not caller.sampled:
                return None
            return Span(
                self,
                name,
                kind=kind,
                trace_id=caller.trace_id,
                parent_id=caller.span_id,
                state=caller.state,
            )
        trace_id = self._rng.getrandbits(128) or 1
        if (trace_id & ((1 << _ID_BITS) - 1)) >= self._bound:
            return None
        return Span(self, name, kind=kind, trace_id=trace_id.to_bytes(16), parent_id=None)
