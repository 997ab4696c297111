"""The gateway's client connections: uvicorn's httptools protocol with the limits a public
listener needs, each refusal an OpenAI-style JSON error.

uvicorn alone lets a client hold a connection forever by sending headers slowly, buffers headers
of any size and number, hands a protocol upgrade (`Connection: Upgrade`) to the app with its body
never delivered, and on a malformed request after valid pipelined ones answers 400 and closes
before those are answered. Here:

- a request's head and body must arrive within `request_timeout_s` of its first byte (or of the
  connection's opening): past it, 408 and the connection closes;
- more than `max_header_bytes` of request line and headers, or `max_headers` headers: 431;
- any upgrade (WebSocket or other): 400, as the gateway speaks plain HTTP/1.1 only;
- past `max_connections` open connections: 503 with Retry-After;
- a malformed request is answered (400) after the requests before it on the connection.

`server` runs uvicorn with this class (`http=`) and `configure()`s its limits in each worker.
"""

from __future__ import annotations

import asyncio
import collections

import httptools
from uvicorn.protocols.http import httptools_impl

from tiers.runtime.gateway import config, errors

_LIMITS: config.ServerLimits = config.ServerLimits()


def configure(limits: config.ServerLimits) -> None:
    """Sets the limits of every connection this process accepts from now on."""
    global _LIMITS
    _LIMITS = limits


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the refusal is in `error`."""

    def __init__(self, error: errors.GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def _refusal_bytes(error: errors.GatewayError) -> bytes:
    body = error.body()
    head = [
        httptools_impl.STATUS_LINE[error.status],
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        *(name + b": " + value + b"\r\n" for name, value in error.headers),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class GatewayProtocol(httptools_impl.HttpToolsProtocol):
    """One client connection (see the module's docstring for what it refuses).

    Its checks cost a normal request no call per header and no timer of its own: a head is
    measured header by header only when the bytes it arrived in could exceed the limit, and one
    timer per connection watches the deadline of whichever request is in progress, re-armed
    when it fires early rather than set and cancelled for every request.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._limits = _LIMITS
        self._timer: asyncio.TimerHandle | None = None
        self._deadline_at: float | None = None
        """When the request in progress (or the first one) must have arrived; None between."""
        self._in_head = False
        self._chunk_bytes = 0
        """Of the data being parsed now."""
        self._head_bound = 0
        """Received since the head began: its size or more (its first chunk counts whole)."""
        self._pending: errors.GatewayError | None = None
        self._refused = False
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the answer is given or queued; nothing more is read
        self._unset_keepalive_if_required()
        self._chunk_bytes = size = len(data)
        if self._in_head:
            self._head_bound += size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_upgrade_refused())
            return
        except httptools.HttpParserError as error:
            refused = error.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.error)
            else:
                self._refuse(errors.GatewayError(400, "The request is not valid HTTP/1.1."))
            return
        if self._in_head and self._head_bound > self._limits.max_header_bytes:
            self._refuse(_headers_too_large(self._limits))

    # parser callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bound = self._chunk_bytes
        if self._deadline_at is None:
            self._start_deadline()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        limits = self._limits
        if len(self.headers) > limits.max_headers:
            raise _Refused(
                errors.GatewayError(
                    431, f"A request may carry at most {limits.max_headers} headers."
                )
            )
        if (
            self._head_bound > limits.max_header_bytes
            and self._head_bytes() > limits.max_header_bytes
        ):
            raise _Refused(_headers_too_large(limits))
        if self.parser.should_upgrade():
            raise _Refused(_upgrade_refused())
        if len(self.connections) > limits.max_connections:
            raise _Refused(
                errors.GatewayError(
                    503,
                    "This gateway replica is at its connection limit; retry shortly.",
                    type="server_error",
                    code="overloaded",
                    headers=((b"retry-after", b"1"),),
                )
            )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._deadline_at = None  # the timer, when it fires, finds nothing to cut
        super().on_message_complete()

    def on_response_complete(self) -> None:
        last = not self.pipeline  # else the next queued request starts now
        super().on_response_complete()
        if self._pending is not None and last:
            self._send_refusal(self._pending)

    # limits

    def _head_bytes(self) -> int:
        """The request line's target and the headers, as parsed (each header's `: ` and CRLF
        counted)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _start_deadline(self) -> None:
        self._deadline_at = self.loop.time() + self._limits.request_timeout_s
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline_at, self._deadline_reached)

    def _stop_deadline(self) -> None:
        self._deadline_at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline_reached(self) -> None:
        self._timer = None
        if self._deadline_at is None:
            return  # no request in progress: the next one starts a timer again
        if self._deadline_at > self.loop.time():
            # A later request's deadline: this timer was set for an earlier one.
            self._timer = self.loop.call_at(self._deadline_at, self._deadline_reached)
            return
        self._refuse(
            errors.GatewayError(
                408,
                f"The request did not arrive within {self._limits.request_timeout_s:g}s.",
                code="request_timeout",
            )
        )

    def _refuse(self, error: errors.GatewayError) -> None:
        """Answers `error` and closes the connection: at once when no earlier request is still
        being answered, else after the last of them."""
        self._refused = True
        self._stop_deadline()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        queued = [queued for queued, _ in self.pipeline]
        # A queued request whose body never arrived would never be complete: it is dropped.
        self.pipeline = collections.deque(
            (queued, app) for queued, app in self.pipeline if not queued.more_body
        )
        running = cycle is not None and all(cycle is not other for other in queued)
        if running and cycle is not None and cycle.more_body and not cycle.response_started:
            # The app waits for a body that is not coming: it sees the client go away.
            cycle.disconnected = True
            cycle.message_event.set()
            self.pipeline.clear()
        elif queued or (cycle is not None and not cycle.response_complete):
            self._pending = error
            return
        self._send_refusal(error)

    def _send_refusal(self, error: errors.GatewayError) -> None:
        self._pending = None
        self._refused = True
        self._stop_deadline()
        if not self.transport.is_closing():
            self.transport.write(_refusal_bytes(error))
            self.transport.close()


def _upgrade_refused() -> errors.GatewayError:
    return errors.GatewayError(
        400,
        "This server speaks HTTP/1.1 only: protocol upgrades (WebSocket, h2c) are not supported.",
        code="upgrade_not_supported",
    )


def _headers_too_large(limits: config.ServerLimits) -> errors.GatewayError:
    return errors.GatewayError(
        431, f"The request line and headers exceed {limits.max_header_bytes} bytes."
    )
