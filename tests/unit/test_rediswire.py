"""The gateway's Redis client backing off after Redis failed: the back-off's state machine on a
fake clock, and the client against a local TCP server that accepts connections and answers only
when told (what a SIGSTOPped Redis does: the kernel still accepts, nothing answers)."""

from __future__ import annotations

import asyncio

import pytest

from tiers.runtime.gateway import rediswire


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_while_failures_go_on_up_to_its_bound_and_a_success_ends_it() -> None:
    clock = FakeClock()
    backoff = rediswire.Backoff(first_s=1.0, max_s=4.0, clock=clock)
    assert backoff.allows() and backoff.failures == 0

    assert [backoff.failed() for _ in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert not backoff.allows()
    clock.now += 3.99
    assert not backoff.allows()
    clock.now += 0.01
    assert backoff.allows(), "the bound: 4 s after the last failure"

    assert backoff.failed() == 4.0 and not backoff.allows()
    backoff.succeeded()
    assert backoff.allows() and backoff.failures == 0
    assert backoff.failed() == 1.0, "a new streak starts from the first back-off"
    clock.now += 1.0
    assert backoff.allows()


class Server:
    """Accepts every connection; answers each command +OK while `answering`, else nothing."""

    def __init__(self) -> None:
        self.answering = False
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while data := await reader.read(65536):
            if self.answering:  # one command per "*N" array header (the tests' args hold no "*")
                writer.write(b"+OK\r\n" * data.count(b"*"))
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def quick(call: asyncio.Future[object] | object) -> float:
    """How long a call took to fail with Unavailable."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(rediswire.Unavailable):
        await call  # type: ignore[misc]
    return loop.time() - started


def test_a_hung_redis_is_skipped_at_once_during_the_backoff_then_one_call_probes_it() -> None:
    asyncio.run(hung_then_back())


async def hung_then_back() -> None:
    server = Server()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    clock = FakeClock()
    backoff = rediswire.Backoff(first_s=1.0, max_s=4.0, clock=clock)
    wire = rediswire.Client(server.url, timeout_s=0.1, backoff=backoff)
    try:
        server.answering = True
        assert await wire.call("SET", "k", "v") == b"OK"
        assert backoff.failures == 0

        # Hung: the command in flight waits out the timeout, then every call fails at once.
        server.answering = False
        assert 0.09 < await quick(wire.call("GET", "k")) < 1.0
        assert backoff.failures == 1
        assert await quick(wire.call("GET", "k")) < 0.01
        assert server.connections == 1, "no connection tried during the back-off"

        # The back-off over: one call probes (connect, PING unanswered); the others meanwhile
        # fail at once, and the back-off doubles.
        clock.now += 1.0
        probe = asyncio.ensure_future(wire.call("GET", "k"))
        await asyncio.sleep(0)
        assert await quick(wire.call("GET", "k")) < 0.01
        assert 0.09 < await quick(probe) < 1.0
        assert server.connections == 2 and backoff.failures == 2
        clock.now += 1.0
        assert await quick(wire.call("GET", "k")) < 0.01, "2 s this time"

        # Back: the next probe's PING is answered, the streak ends, calls go through.
        server.answering = True
        clock.now += 1.0
        assert await wire.call("GET", "k") == b"OK"
        assert backoff.failures == 0 and server.connections == 3
        assert await wire.call("GET", "k") == b"OK"
    finally:
        await wire.close()
        server.server.close()


def test_a_refused_connection_backs_off_too() -> None:
    asyncio.run(refused())


async def refused() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    clock = FakeClock()
    backoff = rediswire.Backoff(clock=clock)
    wire = rediswire.Client(f"redis://127.0.0.1:{port}", timeout_s=0.1, backoff=backoff)
    with pytest.raises(rediswire.Unavailable, match="cannot connect"):
        await wire.call("GET", "k")
    assert backoff.failures == 1
    with pytest.raises(rediswire.Unavailable, match="not retried yet"):
        await wire.call("GET", "k")
    await wire.close()
