"""The mock backend as a raw ASGI app: routing, auth, faults, latency, and sending replies.

No web framework: the mock is the floor of the gateway benchmark, so each request costs one dict
lookup, one JSON parse and one JSON dump. `build_app(config)` is what `server` hands to uvicorn.
"""

import asyncio
import contextlib
import hmac
import random
import time
import urllib.parse
from collections.abc import Callable
from typing import NamedTuple

import orjson

from tiers.runtime import asgi
from tiers.runtime.mockllm import (
    billing,
    config,
    errors,
    faults,
    latency,
    responses,
    stats,
    tokens,
    validation,
)

# A reply's JSON body, or the events of an SSE stream.
Body = bytes | list[bytes]


class Prepared(NamedTuple):
    """A reply ready to send, and what it bills once it is sent."""

    body: Body
    model: str
    billed: billing.Usage


Prepare = Callable[[bytes, str | None], Prepared]

_AZURE_PREFIX = "/openai/deployments/"
_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def build_app(cfg: config.MockConfig) -> "MockApp":
    return MockApp(cfg)


class MockApp:
    def __init__(self, cfg: config.MockConfig) -> None:
        self.config = cfg
        rng = random.Random(cfg.seed)
        self.faults = faults.FaultState(cfg.faults, rng=rng)
        self.latency = latency.LatencySampler(cfg.latency, rng=rng)
        self.stats = stats.Stats()
        self.prompt_cache = billing.PromptCache()
        self._api_key = cfg.api_key.encode() if cfg.api_key else None
        self._models_body = responses.model_list(cfg.models)
        # Endpoint names, as stats reports them, and how each prepares its reply.
        self._inference: dict[str, tuple[str, Prepare]] = {
            "chat/completions": ("chat.completions", self._chat),
            "completions": ("completions", self._completion),
            "embeddings": ("embeddings", self._embedding),
        }

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        if method == "POST" and path.startswith("/v1/"):
            operation = self._inference.get(path[4:])
            if operation is not None:
                await self._infer(scope, receive, send, operation, deployment=None)
                return
        elif method == "POST" and path.startswith(_AZURE_PREFIX):
            deployment, _, rest = path[len(_AZURE_PREFIX) :].partition("/")
            operation = self._inference.get(rest)
            if deployment and operation is not None:
                await self._infer(scope, receive, send, operation, deployment=deployment)
                return
        elif method == "GET" and path == "/v1/models":
            await self._models(scope, send)
            return
        elif method == "GET" and path == "/healthz":
            await _send_json(send, 200, b'{"status":"ok"}')
            return
        elif path.startswith("/_mock/"):
            await self._control(method, path, receive, send)
            return
        await _send_error(send, errors.not_found(f"{method} {path}"))

    async def _infer(
        self,
        scope: asgi.Scope,
        receive: asgi.Receive,
        send: asgi.Send,
        operation: tuple[str, Prepare],
        *,
        deployment: str | None,
    ) -> None:
        endpoint, prepare = operation
        self.stats.request(endpoint)
        traceparent = dict(scope["headers"]).get(b"traceparent")
        if traceparent is not None:
            self.stats.traceparents.append(traceparent.decode("latin-1"))
        try:
            self._authorize(scope, azure=deployment is not None)
            if deployment is not None:
                _require_api_version(scope)
            prepared = prepare(await _read_body(receive), deployment)
            fault = self.faults.decide()
            if isinstance(fault, errors.ApiError):
                raise fault
        except errors.ApiError as e:
            self.stats.outcome(endpoint, str(e.status))
            await _send_error(send, e)
            return
        if fault is None:
            self.stats.outcome(endpoint, "200")
        elif isinstance(fault, faults.Broken):
            self.stats.outcome(endpoint, fault.how)
            await _send_broken(send, prepared.body, fault.how)
            return
        else:
            self.stats.outcome(endpoint, faults.TIMEOUT)
            await _hang(receive, fault.seconds)
        self.stats.bill.add(prepared.model, prepared.billed)
        body = prepared.body
        if isinstance(body, bytes):
            await _sleep(self.latency.first_byte_s())
            await _send_json(send, 200, body)
        else:
            await self._stream(send, body)

    async def _stream(self, send: asgi.Send, events: list[bytes]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await _sleep(self.latency.first_byte_s())
        delay = self.latency.chunk_delay_s
        if not delay:
            # One write instead of one per chunk: a stream without delays costs a reply's price.
            await send({"type": "http.response.body", "body": b"".join(events)})
            return
        for i, event in enumerate(events):
            if i:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _chat(self, raw: bytes, deployment: str | None) -> Prepared:
        request = validation.chat(raw, default_model=deployment)
        replies = self._replies(request)
        billed, created = self._billed(request, replies), int(time.time())
        body: Body
        if request.stream:
            body = responses.chat_stream(request, replies, created=created, billed=billed)
        else:
            body = responses.chat_completion(request, replies, created=created, billed=billed)
        return Prepared(body, request.model, billed)

    def _completion(self, raw: bytes, deployment: str | None) -> Prepared:
        request = validation.completion(raw, default_model=deployment)
        replies = self._replies(request)
        billed, created = self._billed(request, replies), int(time.time())
        body: Body
        if request.stream:
            body = responses.text_stream(request, replies, created=created, billed=billed)
        else:
            body = responses.text_completion(request, replies, created=created, billed=billed)
        return Prepared(body, request.model, billed)

    def _embedding(self, raw: bytes, deployment: str | None) -> Prepared:
        request = validation.embedding(raw, default_model=deployment)
        dimensions = request.dimensions or self.config.embedding_dim
        body = responses.embedding_list(request, dimensions=dimensions)
        return Prepared(body, request.model, billing.Usage(request.prompt_tokens, 0))

    def _replies(self, request: validation.GenerationRequest) -> list[tokens.Reply]:
        limit = request.max_tokens or self.config.max_reply_tokens
        return [tokens.reply_to(source, limit=limit) for source in request.sources]

    def _billed(
        self, request: validation.GenerationRequest, replies: list[tokens.Reply]
    ) -> billing.Usage:
        reasoning = self.config.reasoning_tokens * len(replies)
        cached = (
            self.prompt_cache.cached_tokens(request.text, request.prompt_tokens)
            if self.config.prompt_cache
            else 0
        )
        return billing.Usage(
            prompt_tokens=request.prompt_tokens,
            completion_tokens=sum(r.tokens for r in replies) + reasoning,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
        )

    async def _models(self, scope: asgi.Scope, send: asgi.Send) -> None:
        self.stats.request("models")
        try:
            self._authorize(scope, azure=False)
        except errors.ApiError as e:
            self.stats.outcome("models", str(e.status))
            await _send_error(send, e)
            return
        self.stats.outcome("models", "200")
        await _send_json(send, 200, self._models_body)

    def _authorize(self, scope: asgi.Scope, *, azure: bool) -> None:
        """OpenAI paths take `Authorization: Bearer KEY`; Azure paths also take `api-key: KEY`."""
        if self._api_key is None:
            return
        provided = None
        for name, value in scope["headers"]:
            if name == b"authorization" and value.startswith(b"Bearer "):
                provided = value[7:]
            elif azure and name == b"api-key":
                provided = value
            if provided is not None and hmac.compare_digest(provided, self._api_key):
                return
        raise errors.unauthorized(provided=provided is not None)

    async def _control(
        self, method: str, path: str, receive: asgi.Receive, send: asgi.Send
    ) -> None:
        """The `/_mock/*` endpoints tests use to steer faults and read counts."""
        if path == "/_mock/stats" and method == "GET":
            await _send_json(send, 200, orjson.dumps(self.stats.snapshot()))
        elif path == "/_mock/faults" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    self.faults.update(_parse_json(await _read_body(receive)))
                except errors.ApiError as e:
                    await _send_error(send, e)
                    return
            await _send_json(send, 200, orjson.dumps(self.faults.snapshot()))
        elif path == "/_mock/reset" and method == "POST":
            self.stats.reset()
            self.faults.reset()
            await _send_json(send, 200, b'{"status":"reset"}')
        else:
            await _send_error(send, errors.not_found(f"{method} {path}"))


async def _sleep(seconds: float) -> None:
    # Skipping the await when latency is off keeps the zero-latency path free of loop round trips.
    if seconds > 0:
        await asyncio.sleep(seconds)


def _require_api_version(scope: asgi.Scope) -> None:
    query = urllib.parse.parse_qs(scope["query_string"].decode("latin-1"))
    if not query.get("api-version"):
        raise errors.missing("api-version")


def _parse_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.invalid_request(f"Invalid JSON: {e}.", param=None) from None


async def _read_body(receive: asgi.Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _hang(receive: asgi.Receive, seconds: float) -> None:
    """Wait `seconds`, or less if the client hangs up first (no point holding a dead request)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), seconds)


class CutConnection(Exception):
    """Raised on purpose after half an answer: uvicorn then drops the connection."""


async def _send_broken(send: asgi.Send, body: Body, how: str) -> None:
    """A 200 whose answer is broken: not JSON (GARBAGE), or cut off half-way (CUT)."""
    if isinstance(body, bytes):
        if how == faults.GARBAGE:
            await _send_json(send, 200, body[: len(body) // 2])
            return
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
    else:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if how == faults.GARBAGE:
            events = [b"data: {not json at all\n\n"] * 3 + [b"data: [DONE]\n\n"]
            await send({"type": "http.response.body", "body": b"".join(events)})
            return
        await send({"type": "http.response.body", "body": b"".join(body[:2]), "more_body": True})
    await asyncio.sleep(0.05)  # the half answer leaves before the connection drops
    raise CutConnection(f"{how}: the connection is dropped half-way through the answer")


async def _send_json(
    send: asgi.Send, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: asgi.Send, error: errors.ApiError) -> None:
    await _send_json(send, error.status, error.body(), error.headers)


async def _lifespan(receive: asgi.Receive, send: asgi.Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
