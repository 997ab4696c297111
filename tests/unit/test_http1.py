"""The HTTP/1.1 client against a real local server (asyncio sockets): keep-alive reuse, body
framings, streaming, timeouts, and what it resends after a server closed a pooled connection."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from tiers.runtime.providers import http1

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request (its head); returns whether to keep the connection open."""


class Server:
    """A raw HTTP/1.1 server whose answers each test writes byte by byte."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                if not await self.handler(head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def answer(body: bytes, *, status: str = "200 OK") -> Handler:
    async def handler(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status.encode(), len(body), body)
        )
        await writer.drain()
        return True

    return handler


def run(coroutine: Coroutine[Any, Any, object]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 10))


def test_a_keep_alive_connection_serves_one_request_after_another() -> None:
    server = Server(answer(b'{"ok": true}', status="201 Created"))

    async def scenario() -> None:
        pool = http1.Pool()
        async with server as url:
            for _ in range(3):
                response = await pool.request(
                    "POST", url + "/v1/x?a=1", headers={"x-key": "k"}, body=b"{}", timeout_s=5
                )
                assert (response.status, response.body) == (201, b'{"ok": true}')
            assert response.headers["content-length"] == "12"
        await pool.close()

    run(scenario())
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /v1/x?a=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"x-key: k\r\n" in server.requests[0] and server.requests[0].endswith(b"\r\n\r\n{}")


def test_a_chunked_body_streams_piece_by_piece() -> None:
    release = asyncio.Event()

    async def chunked(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()
        return True

    server = Server(chunked)

    async def scenario() -> None:
        pool = http1.Pool()
        async with server as url:
            response = await pool.stream("POST", url, body=b"{}", read_timeout_s=5)
            pieces = response.iter_chunks()
            assert await anext(pieces) == b"data:1", "the first piece arrives before the rest"
            release.set()
            assert [piece async for piece in pieces] == [b"data:2"]
            response.release()
            again = await pool.stream("POST", url, body=b"{}", read_timeout_s=5)
            assert await again.read() == b"data:1data:2"
            again.release()
        await pool.close()

    run(scenario())
    assert server.connections == 1, "a stream read to its end gives its connection back"


def test_a_body_without_length_is_read_until_the_server_closes() -> None:
    async def until_close(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    async def scenario() -> None:
        pool = http1.Pool()
        async with Server(until_close) as url:
            response = await pool.request("GET", url, timeout_s=5)
            assert response.body == b"all of it"
            assert (await pool.request("GET", url, timeout_s=5)).body == b"all of it"
        await pool.close()

    run(scenario())


def test_a_pooled_connection_the_server_closed_is_replaced_unseen() -> None:
    async def once_per_connection(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return False  # closes after answering, though the response said keep-alive

    server = Server(once_per_connection)

    async def scenario() -> None:
        pool = http1.Pool()
        async with server as url:
            for _ in range(3):
                assert (await pool.request("POST", url, body=b"{}", timeout_s=5)).body == b"ok"
                await asyncio.sleep(0.05)  # the server's close reaches the pool
        await pool.close()

    run(scenario())
    assert server.connections == 3 and len(server.requests) == 3


@pytest.mark.parametrize(("method", "sent"), [("POST", 1), ("GET", 2)])
def test_only_an_idempotent_request_is_resent_after_a_silent_close(method: str, sent: int) -> None:
    answered: list[bool] = []

    async def first_answers_then_drops(head: bytes, writer: asyncio.StreamWriter) -> bool:
        if answered:
            return False  # read the request, then close without a word
        answered.append(True)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    server = Server(first_answers_then_drops)

    async def scenario() -> None:
        pool = http1.Pool()
        async with server as url:
            await pool.request(method, url, body=b"{}", timeout_s=5)
            with pytest.raises(http1.ClientError):
                await pool.request(method, url, body=b"{}", timeout_s=5)
        await pool.close()

    run(scenario())
    assert len(server.requests) == 1 + sent


def test_a_slow_answer_times_out_and_its_connection_is_not_reused() -> None:
    async def slow_then_fast(head: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"/slow" in head:
            await asyncio.sleep(1)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    server = Server(slow_then_fast)

    async def scenario() -> None:
        pool = http1.Pool()
        async with server as url:
            with pytest.raises(TimeoutError):
                await pool.request("GET", url + "/slow", timeout_s=0.1)
            assert (await pool.request("GET", url + "/fast", timeout_s=5)).body == b"ok"
        await pool.close()

    run(scenario())
    assert server.connections == 2


def test_the_pool_bounds_connections_per_host() -> None:
    async def slowish(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    server = Server(slowish)

    async def scenario() -> None:
        pool = http1.Pool(max_per_host=2)
        async with server as url:
            replies = await asyncio.gather(
                *(pool.request("GET", url, timeout_s=5) for _ in range(10))
            )
            assert {reply.body for reply in replies} == {b"ok"}
        await pool.close()

    run(scenario())
    assert server.connections == 2


def test_a_response_body_past_the_bound_is_an_error_not_memory() -> None:
    server = Server(answer(b"x" * 5000))

    async def scenario() -> None:
        pool = http1.Pool(max_body_bytes=4096)
        async with server as url:
            with pytest.raises(http1.ClientError, match="exceeds 4096 bytes"):
                await pool.request("POST", url, body=b"{}", timeout_s=5)
            streamed = await pool.stream("POST", url, body=b"{}")
            with pytest.raises(http1.ClientError, match="exceeds 4096 bytes"):
                await streamed.read()
            streamed.release()
        await pool.close()

    run(scenario())


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="ftp://host/x"):
        run(http1.Pool().request("GET", "ftp://host/x"))


def test_https_verifies_the_server_and_keeps_the_connection(tmp_path: pathlib.Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                await writer.drain()

    async def scenario() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_side)
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1"
        with pytest.raises(ssl.SSLCertVerificationError):
            await http1.Pool().request("GET", url, timeout_s=5)
        pool = http1.Pool(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            assert (await pool.request("GET", url, timeout_s=5)).body == b"secret"
        await pool.close()
        server.close()

    run(scenario())
    # The refused handshake never reached the handler; both calls shared one connection.
    assert connections == 1
