"""A real gateway process against bad input, as an attacker or a broken client sends it: every
malformed request gets a clean OpenAI-style 4xx (or a refusal and a closed connection), never a
500 or a hang; slow, huge and numerous clients are bounded; streamed answers survive the cache.

Raw sockets, so that what an HTTP client library would never send can be sent; a property-based
fuzz test (hypothesis) throws a few thousand generated requests at one gateway.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

import openai
import orjson
import pytest
from conftest import Processes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GATEWAY = "tiers.runtime.gateway"
MOCK = "tiers.runtime.mockllm"
HELLO = [{"role": "user", "content": "Say hello to the hardening tests"}]
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
ANSWER_WITHIN_S = 10.0


@pytest.fixture
def mock(services: Processes) -> str:
    return services.start("mockllm", MOCK)


@pytest.fixture
def gateway(services: Processes, mock: str) -> str:
    return services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--request-timeout", "2"
    )


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(
    url: str, data: bytes, *, timeout_s: float = ANSWER_WITHIN_S, then_eof: bool = False
) -> bytes:
    """Sends raw bytes (then, with `then_eof`, ends its side) and reads until the server closes
    or `timeout_s` passes (a hang)."""
    with socket.create_connection(address(url), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            if then_eof:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while sending: what arrived still counts
        return read_until_closed(sock, timeout_s)


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    received = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"no close within {timeout_s}s; received {received[:300]!r}")


def statuses(raw: bytes) -> list[int]:
    """The status of each response in `raw` (a response may follow a body without a newline)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def post_bytes(path: str, body: bytes, *extra: bytes, close: bool = True) -> bytes:
    head = [
        b"POST " + path.encode() + b" HTTP/1.1",
        b"host: gateway",
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        *extra,
    ]
    if close:
        head.append(b"connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def json_error(raw: bytes) -> dict[str, Any]:
    error: dict[str, Any] = orjson.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]
    return error


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
        ("/v1/chat/completions", {"messages": [{"role": {"a": 1}, "content": "hi"}]}, "messages[0].role"),
        ("/v1/chat/completions", {"messages": HELLO, "stream": True, "stream_options": [1]}, "stream_options"),
        ("/v1/chat/completions", {"messages": HELLO, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": [3]}]}, "messages[0].content[0]"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x", "name": 1}]}, "messages[0].name"),
        ("/v1/chat/completions", {"messages": HELLO, "tools": {"a": 1}}, "tools"),
        ("/v1/chat/completions", {"messages": HELLO, "tools": [1]}, "tools[0]"),
        ("/v1/chat/completions", {"messages": HELLO, "stop": [1]}, "stop"),
        ("/v1/chat/completions", {"messages": HELLO, "max_tokens": 10**15}, "max_tokens"),
        ("/v1/chat/completions", {"messages": HELLO, "n": True}, "n"),
        ("/v1/chat/completions", {"messages": HELLO, "user": ["u"]}, "user"),
        ("/v1/chat/completions", {"messages": HELLO, "metadata": "m"}, "metadata"),
        ("/v1/completions", {"prompt": {"a": 1}}, "prompt"),
        ("/v1/completions", {"prompt": [["x"]]}, "prompt"),
        ("/v1/embeddings", {"input": [{"a": 1}]}, "input"),
        ("/v1/embeddings", {"input": "x", "dimensions": "8"}, "dimensions"),
        ("/v1/chat/completions", {"messages": HELLO, "model": ["m"]}, "model"),
    ],
)  # fmt: skip
def test_a_field_of_the_wrong_type_is_a_400_naming_it(
    gateway: str, route: str, body: dict[str, Any], param: str
) -> None:
    raw = exchange(gateway, post_bytes(route, orjson.dumps({"model": "gpt-4o-mini", **body})))
    assert statuses(raw) == [400], raw[:300]
    error = json_error(raw)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_json_nested_hundreds_deep_is_a_400(gateway: str) -> None:
    for depth in (65, 300, 1000):
        deep = b"[" * depth + b'"deep"' + b"]" * depth
        body = b'{"model":"m","messages":[{"role":"user","content":"x"}],"x":' + deep + b"}"
        raw = exchange(gateway, post_bytes("/v1/chat/completions", body))
        assert statuses(raw) == [400], (depth, raw[:300])
        assert "deep" in json_error(raw)["message"] or "JSON" in json_error(raw)["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/healthz", "/nowhere"])
def test_a_websocket_upgrade_on_any_route_is_refused(gateway: str, path: str) -> None:
    raw = exchange(
        gateway,
        b"GET " + path.encode() + b" HTTP/1.1\r\nhost: gateway\r\nconnection: Upgrade\r\n"
        b"upgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"sec-websocket-version: 13\r\n\r\n",
    )
    assert statuses(raw) == [400]
    assert json_error(raw)["code"] == "upgrade_not_supported"


def test_a_post_asking_for_an_upgrade_is_answered_not_left_hanging(gateway: str) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": HELLO})
    for extra in (
        (b"connection: Upgrade, keep-alive", b"upgrade: h2c"),
        (b"connection: Upgrade", b"upgrade: websocket"),
    ):
        raw = exchange(gateway, post_bytes("/v1/chat/completions", body, *extra, close=False))
        assert statuses(raw) == [400], raw[:300]


def test_pipelined_requests_are_answered_before_a_malformed_one_is_refused(gateway: str) -> None:
    valid = post_bytes("/v1/chat/completions", orjson.dumps({"model": "m", "messages": HELLO}), close=False)  # fmt: skip
    raw = exchange(gateway, valid + valid + b"NOT HTTP AT ALL\r\n\r\n")
    assert statuses(raw) == [200, 200, 400]


def test_a_client_sending_its_head_or_body_slowly_is_cut_off(gateway: str) -> None:
    started = time.monotonic()
    raw = exchange(gateway, b"POST /v1/chat/completions HTTP/1.1\r\nhost: gat")
    assert statuses(raw) == [408]
    raw = exchange(
        gateway,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-length: 100\r\n\r\n{",
    )
    assert statuses(raw) == [408]
    assert time.monotonic() - started < 8, "each cut within the 2 s deadline"
    with socket.create_connection(address(gateway)) as idle:
        assert statuses(read_until_closed(idle, timeout_s=6)) == [408]


def test_the_deadline_counts_from_each_requests_first_byte(gateway: str) -> None:
    """A keep-alive connection older than the deadline still gets a full deadline for each new
    request (the connection's one timer, set for the first, moves on to the later one)."""
    body = orjson.dumps({"model": "m", "messages": HELLO})
    request = post_bytes("/v1/chat/completions", body, close=False)
    head, rest = request[: request.index(b"\r\n\r\n")], request[request.index(b"\r\n\r\n") :]
    with socket.create_connection(address(gateway), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(request)
        assert read_one_response(sock) == 200
        time.sleep(1.2)
        sock.sendall(head)  # 1.2 s after the first request; its own deadline ends at 3.2 s
        time.sleep(1.2)  # past the first request's deadline, within this one's
        sock.sendall(rest)
        assert read_one_response(sock) == 200


def test_headers_too_large_or_too_many_get_431(gateway: str) -> None:
    health = b"GET /healthz HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n"
    raw = exchange(gateway, health + b"x-big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert statuses(raw) == [431]
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(500))
    assert statuses(exchange(gateway, health + many + b"\r\n")) == [431]
    assert statuses(exchange(gateway, health + b"\r\n")) == [200]


def test_connections_past_the_limit_get_503(services: Processes, mock: str) -> None:
    gateway = services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--max-connections", "4"
    )
    held = [socket.create_connection(address(gateway)) for _ in range(4)]
    try:
        time.sleep(0.2)  # the server accepts them in its own time
        raw = exchange(gateway, b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        assert statuses(raw) == [503]
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 30
    while statuses(exchange(gateway, b"GET /healthz HTTP/1.1\r\nhost: g\r\nconnection: close\r\n\r\n")) != [200]:  # fmt: skip
        assert time.monotonic() < deadline, "capacity comes back once clients leave"
        time.sleep(0.1)


def test_a_streamed_completion_hit_replays_completion_chunks(gateway: str) -> None:
    sdk = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    first = list(sdk.completions.create(model="gpt-4o-mini", prompt="Count to three", stream=True))
    replayed = sdk.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt="Count to three", stream=True
    )
    assert replayed.headers["x-tiers-cache"] == "hit"
    chunks = list(replayed.parse())
    assert {c.object for c in chunks} == {"text_completion"}
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text and text == "".join(c.choices[0].text for c in first if c.choices)


def test_streamed_tool_calls_survive_into_the_cached_answer(gateway: str) -> None:
    sdk = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]  # fmt: skip
    choice: Any = {"type": "function", "function": {"name": "lookup"}}
    asked = {"model": "gpt-4o-mini", "messages": HELLO, "tools": tools, "tool_choice": choice}
    streamed = list(sdk.chat.completions.create(**asked, stream=True))
    arguments = "".join(
        call.function.arguments or ""
        for c in streamed
        if c.choices
        for call in c.choices[0].delta.tool_calls or ()
        if call.function is not None
    )
    assert json.loads(arguments)["text"]
    cached = sdk.chat.completions.with_raw_response.create(**asked)
    assert cached.headers["x-tiers-cache"] == "hit"
    message = cached.parse().choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup"
    assert message.tool_calls[0].function.arguments == arguments
    assert cached.parse().choices[0].finish_reason == "tool_calls"


# --- fuzz ---------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["model", "messages", "prompt", "input", "stream", "stream_options", "temperature", "top_p",
     "max_tokens", "n", "tools", "tool_choice", "stop", "user", "metadata", "response_format",
     "seed", "logprobs", "dimensions", "encoding_format", "functions", "logit_bias"]
)  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {}, optional={"role": JSON_VALUES | st.sampled_from(["user", "assistant", "tool"]),
                  "content": JSON_VALUES, "name": JSON_VALUES, "tool_calls": JSON_VALUES}
)  # fmt: skip
BODIES = st.one_of(
    st.dictionaries(FIELDS, JSON_VALUES, max_size=6),
    st.fixed_dictionaries(
        {"model": st.just("gpt-4o-mini"), "messages": st.lists(MESSAGE, max_size=3)},
        optional={
            "stream": JSON_VALUES,
            "stream_options": JSON_VALUES,
            "tools": JSON_VALUES,
            "max_tokens": JSON_VALUES,
            "stop": JSON_VALUES,
        },
    ),
    st.fixed_dictionaries(
        {"model": st.just("gpt-4o-mini"), "prompt": JSON_VALUES, "input": JSON_VALUES},
        optional={"stream": st.booleans(), "stream_options": JSON_VALUES},
    ),
    JSON_VALUES,
)
RAW = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda method, path, headers, body: (
            b"%s %s HTTP/1.1\r\n%s\r\n%s" % (method, path, headers, body)
        ),
        st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS", b"PRI", b"G\x00T"]),
        st.sampled_from([route.encode() for route in ROUTES] + [b"/", b"*", b"/v1/models?x=%zz"]),
        st.lists(
            st.sampled_from(
                [
                    b"host: g\r\n",
                    b"content-length: 5\r\n",
                    b"content-length: -1\r\n",
                    b"transfer-encoding: chunked\r\n",
                    b"connection: upgrade\r\n",
                    b"upgrade: websocket\r\n",
                    b"expect: 100-continue\r\n",
                    b"bad header\r\n",
                    b"x: \x00\r\n",
                ]
            ),
            max_size=5,
        ).map(b"".join),
        st.binary(max_size=40),
    ),
)


class Connection:
    """One keep-alive connection to the gateway, reopened when the server closes it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sock: socket.socket | None = None

    def request(self, path: str, body: bytes) -> int:
        for _ in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(address(self.url), timeout=ANSWER_WITHIN_S)
            try:
                self.sock.sendall(post_bytes(path, body, close=False))
                return read_one_response(self.sock)
            except (ConnectionError, EOFError):
                self.close()
        raise AssertionError("the gateway closed the connection twice without an answer")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def read_one_response(sock: socket.socket) -> int:
    """The status of one response, its body read whole (Content-Length or chunked)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    if b"content-length" in headers:
        needed = int(headers[b"content-length"])
        while len(rest) < needed:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            rest += chunk
    else:  # a stream: chunked until the zero-length chunk
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            rest += chunk
    return status


@pytest.fixture
def fuzzed_gateway(services: Processes, mock: str) -> str:
    return services.start("gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1")


def test_thousands_of_malformed_requests_never_get_a_500_or_a_hang(fuzzed_gateway: str) -> None:
    connection = Connection(fuzzed_gateway)
    seen: dict[int, int] = {}

    @settings(
        max_examples=2000,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(route=st.sampled_from(ROUTES), body=BODIES)
    def bodies(route: str, body: Any) -> None:
        data = json.dumps(body).encode()  # json, not orjson: integers past 64 bits too
        status = connection.request(route, data)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (route, data[:300], status)

    @settings(
        max_examples=800,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=RAW)
    def raw_requests(data: bytes) -> None:
        raw = exchange(fuzzed_gateway, data + b"\r\n\r\n", timeout_s=5, then_eof=True)
        for status in statuses(raw):
            assert status < 500, (data[:300], raw[:300])

    started = time.monotonic()
    try:
        bodies()
    finally:
        connection.close()
    raw_requests()
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen
    assert time.monotonic() - started < 240
