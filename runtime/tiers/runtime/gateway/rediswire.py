"""A lean Redis client for the gateway's per-request commands: one pipelined connection.

Why not redis-py here: on the cache-miss path its asyncio client cost more CPU per command than
the rest of the gateway's own code (a connection pool checkout, a retry wrapper, a lock, a
StreamWriter per command). Redis answers one connection's commands in order, so one connection
serves every concurrent request: each command's future waits in a queue, and the replies, parsed
by hiredis (the C parser redis-py uses too), resolve them in turn. Commands issued in the same
event-loop turn go out in one write.

Failure is quick and loud: a command unanswered within `timeout_s` drops the connection and
fails every command in flight with `Unavailable`. After that timeout, or a failed connect, Redis
is treated as down for a back-off (1 s, doubling up to 4 s while it keeps failing; `Backoff`):
commands fail at once instead of each waiting on a dead or hung host (a SIGSTOPped Redis still
accepts connections). Then one caller probes it (connect, then PING within the timeout) while the
others still fail at once; a PING answered ends the back-off. A healthy connection's commands
never look at the back-off. The gateway treats `Unavailable` as "Redis is down" and serves
without it. The stats recorder and the budget, which talk to Redis once a second, keep using
redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import hiredis

Arg = bytes | str | int | float

Clock = Callable[[], float]


def _pack(args: tuple[Arg, ...]) -> bytes:
    # hiredis's stub types its argument as a one-element tuple; it takes any number.
    return bytes(hiredis.pack_command(args))  # type: ignore[arg-type]


class Error(Exception):
    """Any failure of a Redis command."""


class Unavailable(Error):
    """Redis could not be reached or did not answer in time."""


class ReplyError(Error):
    """Redis answered with an error (e.g. NOSCRIPT, WRONGTYPE)."""


class Script:
    """A Lua script run by its SHA1 (EVALSHA), loaded on first use (EVAL on NOSCRIPT)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


class Backoff:
    """Whether Redis may be tried now: after `failed`, not for `first_s`, doubling with each
    failure in a row up to `max_s`; `succeeded` ends the streak."""

    def __init__(self, *, first_s: float = 1.0, max_s: float = 4.0, clock: Clock = time.monotonic):
        self.first_s, self.max_s, self._clock = first_s, max_s, clock
        self.failures = 0
        self.until = 0.0

    def allows(self) -> bool:
        return self._clock() >= self.until

    def failed(self) -> float:
        """Starts (or lengthens) the back-off; returns how long it lasts."""
        self.failures += 1
        delay = min(self.first_s * 2.0 ** min(self.failures - 1, 30), self.max_s)
        self.until = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._reader = hiredis.Reader(replyError=ReplyError, protocolError=Unavailable)
        self._loop = asyncio.get_running_loop()
        self._outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                future, _ = self.pending.popleft()
                if future.done():  # its caller gave up (cancelled); the reply is dropped
                    continue
                if isinstance(reply, ReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (Unavailable, IndexError) as error:
            self.fail(Unavailable(f"unreadable reply from Redis: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_pending(Unavailable(f"connection to Redis lost: {exc or 'closed'}"))

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(packed)
        self.pending.append((future, self._loop.time()))
        return future

    def oldest_age(self) -> float:
        return self._loop.time() - self.pending[0][1] if self.pending else 0.0

    def fail(self, error: Unavailable) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._fail_pending(error)

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _fail_pending(self, error: Unavailable) -> None:
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved, so a cancelled caller's logs stay quiet


class Client:
    """`redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS); `password`, when
    given, is the password of a URL that carries none."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        timeout_s: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"redis URL {url!r}: give redis://host:port/db or rediss://...")
        self._host, self._port = parts.hostname, parts.port or 6379
        self._tls = parts.scheme == "rediss"
        self._hello: list[tuple[Arg, ...]] = []
        if parts.password is not None:
            password = urllib.parse.unquote(parts.password)
        if password is not None:
            user = urllib.parse.unquote(parts.username or "")
            self._hello.append(("AUTH", user, password) if user else ("AUTH", password))
        db = parts.path.strip("/")
        if db and db != "0":
            self._hello.append(("SELECT", int(db)))
        self._hello.append(("PING",))  # a hung Redis accepts connections: it must answer
        self._timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    async def call(self, *args: Arg) -> Any:
        """One command's reply: bytes, int, None or a list of them; raises `Error`."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        return await protocol.send(_pack(args))

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except ReplyError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        return await self.call("EVAL", script.text, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
            self._protocol.closed = True

    async def _connect(self) -> _Protocol:
        connecting = self._connecting
        if connecting is None:
            if not self.backoff.allows():
                raise Unavailable("Redis failed a moment ago; not retried yet")
            connecting = self._connecting = asyncio.ensure_future(self._open())
        elif self.backoff.failures:
            raise Unavailable("Redis failed a moment ago; another request is probing it")
        return await asyncio.shield(connecting)

    async def _open(self) -> _Protocol:
        try:
            protocol = await self._handshake()
        except (OSError, TimeoutError, Error) as error:
            self.backoff.failed()
            raise Unavailable(f"cannot connect to Redis: {type(error).__name__}") from None
        finally:
            self._connecting = None
        self.backoff.succeeded()
        self._protocol = protocol
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout_s / 2, self._watch)
        return protocol

    async def _handshake(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self._tls else None
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                _, protocol = await loop.create_connection(
                    _Protocol,
                    self._host,
                    self._port,
                    ssl=context,
                    server_hostname=self._host if context else None,
                )
                for command in self._hello:
                    await protocol.send(_pack(command))
        except BaseException:
            if protocol is not None:  # connected, but it did not answer: not left open
                protocol.fail(Unavailable("Redis did not answer the handshake"))
            raise
        return protocol

    def _watch(self) -> None:
        """Drops a connection whose oldest command waited past the timeout."""
        protocol = self._protocol
        if protocol is not None and not protocol.closed and protocol.oldest_age() > self._timeout_s:
            protocol.fail(Unavailable(f"Redis did not answer within {self._timeout_s} s"))
            self.backoff.failed()
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self._timeout_s / 2, self._watch)
