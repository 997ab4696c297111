"""A small HTTP/1.1 client for calling model backends: keep-alive pools over asyncio Protocols.

Why not aiohttp: a gateway in front of a fast backend spends most of its CPU in the client that
calls it, and a general-purpose client pays per request for what a backend call never uses
(cookies, redirects, multipart, proxies, a layered reader). This one does only what the gateway
and the model client need:

- a pool of keep-alive connections per (scheme, host, port), at most `max_per_host` of them;
- `request(...)`: a whole response (Content-Length, chunked, or read until close), under one
  deadline that covers connecting, sending and reading;
- `stream(...)`: the status and headers first, then the body piece by piece as it arrives (SSE),
  with a deadline to connect and one per read;
- HTTPS through asyncio's own TLS (`ssl.create_default_context()` unless a context is given);
- one silent retry on a fresh connection when a pooled one turns out to be closed by the server:
  always when nothing was sent yet, and for idempotent methods also when the request went out but
  no byte of a response came back (RFC 9110, 9.2.2: a POST may have been acted on).

Responses are parsed by `httptools` (llhttp), the parser uvicorn uses. Header names come back in
lower case. `providers.backends` sends every model call through it, for the gateway and the model
client alike.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import ssl
import time
import typing
import urllib.parse
from collections.abc import AsyncIterator, Mapping

import httptools

__all__ = ["ClientError", "Pool", "Response", "StreamingResponse"]

IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS", "TRACE"})
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""A whole response read into memory (`request`, `StreamingResponse.read`); past it, ClientError."""
_PAUSE_ABOVE_BYTES = 256 * 1024
"""A streamed body buffered past this stops reading from the socket until the reader catches up."""


class ClientError(Exception):
    """The connection failed or the server answered something that is not HTTP/1.1."""


class _StaleConnection(ClientError):
    """The server closed the connection before a byte of the response arrived."""


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class _Target:
    key: tuple[str, str, int]
    """(scheme, host, port): the pool a request's connection comes from."""
    head: bytes
    """The request line's target and the Host header, ready to join."""


@functools.lru_cache(maxsize=256)
def _target(method: str, url: str) -> _Target:
    if method == "HEAD":
        raise ValueError("method HEAD: responses without a body are not supported")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url {url!r}: only http:// and https:// URLs with a host are supported")
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if port == default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname and port == default_port:
        host = f"[{parts.hostname}]"
    head = f"{method} {path} HTTP/1.1\r\nhost: {host}\r\n".encode("latin-1")
    return _Target((parts.scheme, parts.hostname, port), head)


def _encode_request(
    target: _Target, headers: Mapping[str, str] | None, body: bytes | None
) -> bytes:
    lines = [target.head]
    if headers:
        lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
    if body is not None:
        lines.append(b"content-length: %d\r\n\r\n" % len(body))
        lines.append(body)
    else:
        lines.append(b"\r\n")
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    """One socket, one request at a time; httptools calls the `on_*` methods as bytes arrive."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.busy = False
        self.written = False
        self._parser = httptools.HttpResponseParser(self)
        self._loop = asyncio.get_running_loop()
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received_any = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._until_close = False
        self._head: asyncio.Future[None] = self._loop.create_future()
        self._wakeup: asyncio.Future[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ClientError(f"invalid HTTP response: {error}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and self.status and not self.complete:
            self.on_message_complete()
        elif not self.complete:
            if self.received_any:
                self._fail(ClientError("the server closed the connection mid-response"))
            else:
                self._fail(_StaleConnection("the server closed the connection"))
        self._wake()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:  # an interim response: the real one follows
            self.status, self.headers = 0, []
            return
        names = {name for name, _ in self.headers}
        self._until_close = (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and self.status not in (204, 304)
        )
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_ABOVE_BYTES and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.status:
            return
        self.complete = True
        self.keep_alive = not self._until_close and self._parser.should_keep_alive()
        if not self._head.done():
            self._head.set_result(None)
        self._wake()

    # used by the pool and the responses

    def send(self, data: bytes) -> None:
        self._reset()
        self.busy, self.written = True, False
        if self.closed or self.transport is None or self.transport.is_closing():
            raise _StaleConnection("the server had closed the pooled connection")
        self.transport.write(data)
        self.written = True

    async def head(self) -> None:
        await self._head

    async def next_chunk(self) -> bytes | None:
        """The body bytes that arrived since the last call, or None once the body has ended."""
        while not self.chunks:
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self._wakeup = self._loop.create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        data = b"".join(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        self.chunks.clear()
        if self.buffered > _PAUSE_ABOVE_BYTES and self.transport is not None:
            self.transport.resume_reading()
        self.buffered = 0
        return data

    def header_dict(self) -> dict[str, str]:
        return {name.decode("latin-1"): value.decode("latin-1") for name, value in self.headers}

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: ClientError) -> None:
        if self.error is None:
            self.error = error
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved here so that an unawaited head logs nothing

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class _HostPool:
    """The connections to one (scheme, host, port): idle ones (most recent last) and a count."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: list[_Connection] = []
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class StreamingResponse:
    """A response whose body is read as it arrives; call `release()` when done (or use `async
    with`), which returns the connection to the pool if the body was read to its end."""

    def __init__(self, pool: Pool, connection: _Connection, read_timeout_s: float | None) -> None:
        self._pool = pool
        self._connection = connection
        self._read_timeout_s = read_timeout_s
        self._released = False
        self.status = connection.status
        self.headers = connection.header_dict()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes in the pieces they arrived in (several pieces may be joined)."""
        while True:
            async with asyncio.timeout(self._read_timeout_s):
                data = await self._connection.next_chunk()
            if data is None:
                return
            yield data

    async def read(self) -> bytes:
        """The rest of the body, at most the pool's `max_body_bytes` (else ClientError)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_chunks():
            size += len(chunk)
            if size > self._pool.max_body_bytes:
                self._connection.close()
                raise _too_large(self._pool.max_body_bytes)
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._connection)

    async def __aenter__(self) -> StreamingResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Pool:
    """Keep-alive connections to any number of hosts; one per event loop, closed with `close()`."""

    def __init__(
        self,
        *,
        max_per_host: int = 256,
        idle_timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._max_per_host = max_per_host
        self.max_body_bytes = max_body_bytes
        self._idle_timeout_s = idle_timeout_s
        self._ssl_context = ssl_context
        self._hosts: dict[tuple[str, str, int], _HostPool] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> Response:
        """A whole response within `timeout_s` (connect, send, read); TimeoutError past it."""
        target = _target(method, url)
        data = _encode_request(target, headers, body)
        parts: list[bytes] = []
        async with asyncio.timeout(timeout_s):
            connection = await self._send(method, target, data)
            try:
                size = 0
                while (chunk := await connection.next_chunk()) is not None:
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise _too_large(self.max_body_bytes)
                    parts.append(chunk)
            except BaseException:
                connection.close()
                self._release(connection)
                raise
        response = Response(connection.status, connection.header_dict(), b"".join(parts))
        self._release(connection)
        return response

    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
    ) -> StreamingResponse:
        """The status and headers within `connect_timeout_s + read_timeout_s`; the body is read
        from the returned response, each piece within `read_timeout_s`."""
        target = _target(method, url)
        data = _encode_request(target, headers, body)
        total = None
        if connect_timeout_s is not None and read_timeout_s is not None:
            total = connect_timeout_s + read_timeout_s
        async with asyncio.timeout(total):
            connection = await self._send(method, target, data)
        return StreamingResponse(self, connection, read_timeout_s)

    async def close(self) -> None:
        for host in self._hosts.values():
            for connection in host.idle:
                connection.close()
            host.idle.clear()

    async def _send(self, method: str, target: _Target, data: bytes) -> _Connection:
        """Sends on a pooled or new connection and waits for the response's head."""
        for last_try in (False, True):
            connection = await self._acquire(target.key, fresh=last_try)
            try:
                connection.send(data)
                await connection.head()
                return connection
            except _StaleConnection as stale:
                connection.close()
                self._release(connection)
                # A request that went out may have been acted on: only idempotent ones are resent.
                safe = not connection.written or method in IDEMPOTENT
                if last_try or not connection.reused or not safe:
                    raise ClientError(str(stale)) from None
            except BaseException:
                connection.close()
                self._release(connection)
                raise
        raise AssertionError("unreachable")

    async def _acquire(self, key: tuple[str, str, int], *, fresh: bool) -> _Connection:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _HostPool(self._max_per_host)
        now = time.monotonic()
        while True:
            while host.idle and not fresh:
                connection = host.idle.pop()
                if not connection.closed and now - connection.idle_since < self._idle_timeout_s:
                    connection.reused = True
                    return connection
                connection.close()
                host.open -= 1
            if host.open < host.limit:
                host.open += 1
                try:
                    return await self._connect(key)
                except BaseException:
                    host.open -= 1
                    host.wake_one()
                    raise
            if fresh and host.idle:
                # At the limit with idle connections only: replace the oldest with a new one.
                host.idle.pop(0).close()
                host.open -= 1
                continue
            waiter = asyncio.get_running_loop().create_future()
            host.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    host.wake_one()  # the turn handed to this task goes to the next one
                raise

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, hostname, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            tls = self._ssl_context
        _, connection = await loop.create_connection(
            lambda: _Connection(key),
            hostname,
            port,
            ssl=tls,
            server_hostname=hostname if tls is not None else None,
        )
        return connection

    def _release(self, connection: _Connection) -> None:
        """Returns a connection whose response was read to its end, or forgets a spent one."""
        host = self._hosts[connection.key]
        if connection.idle_since < 0:
            return  # released already
        connection.busy = False
        if connection.complete and connection.keep_alive and not connection.closed:
            connection.idle_since = time.monotonic()
            connection.chunks = []
            host.idle.append(connection)
        else:
            connection.close()
            connection.idle_since = -1.0
            host.open -= 1
        host.wake_one()


def _too_large(limit: int) -> ClientError:
    return ClientError(f"the response body exceeds {limit} bytes")
