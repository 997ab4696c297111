"""The push gateway: events in over HTTP, results out to browsers over SSE and WebSocket.

    POST /events           a JSON object, or an array of them, produced to the input topic
                           (the Kafka key is the object's "id" when it has one)
    GET  /events/results   SSE of result records; ?key=ID for one event's result only
    WS   /events/ws        the same records over a WebSocket; ?key=ID filters too

One consumer thread reads the output topic from its end and fans records out to subscribers;
a slow subscriber loses its oldest records rather than slowing the others.

With `push.api_keys_dir` (the endpoint's key-ring model, `tiers.runtime.apikeys`) every call
needs `Authorization: Bearer <key>`; a browser's WebSocket, which cannot send headers, offers the
subprotocols `tiers` and `bearer.<key>`. Each key is a tenant: its events' Kafka keys are
`<tenant>:<id>` (the tenant is a digest of the key, so no client can use another's ids), and it
sees only its own results. Pages of `push.allowed_origins` only may call it from a browser
(CORS, the WebSocket's Origin); bodies, batches and WebSocket messages are bounded.

A caller's W3C `traceparent` (and `tracestate`) goes as it came into the headers of each event
it posts, where a traced job continues its trace (`traces`); a malformed one is not passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import urllib.parse
import uuid

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from tiers.runtime import apikeys, asgi
from tiers.runtime.stream import config
from tiers.runtime.tracing import spans

QUEUE_SIZE = 1000
CONSUMER_START_S = 25.0
"""How long start-up waits for the output topic's consumer to hold its partitions."""
MAX_ID_LENGTH = 256
SUBPROTOCOL = "tiers"
_TOKEN_SUBPROTOCOL = re.compile(r"^bearer\.(.+)$")


class Hub:
    """Subscribers' queues, filled from the consumer thread through the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[asyncio.Queue[bytes], tuple[str | None, str | None]] = {}

    def subscribe(self, key: str | None, *, prefix: str | None = None) -> asyncio.Queue[bytes]:
        """A queue of the records of Kafka key `key` (any when None) that start with `prefix`."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)
        self._queues[queue] = (key, prefix)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._queues.pop(queue, None)

    def publish_threadsafe(self, key: str | None, record: bytes) -> None:
        self._loop.call_soon_threadsafe(self._publish, key, record)

    def _publish(self, key: str | None, record: bytes) -> None:
        for queue, (wanted, prefix) in self._queues.items():
            if wanted is not None and wanted != key:
                continue
            if prefix is not None and (key is None or not key.startswith(prefix)):
                continue
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(record)


class PushGateway:
    def __init__(
        self,
        *,
        bootstrap: str,
        input_topic: str,
        output_topic: str,
        settings: config.PushConfig | None = None,
    ) -> None:
        self.settings = settings or config.PushConfig()
        self.keys = apikeys.KeyRing.from_dir(self.settings.api_keys_dir)
        self._origins = frozenset(self.settings.allowed_origins)
        self._keys_watch: asyncio.Task[None] | None = None
        self.bootstrap = bootstrap
        self.input_topic = input_topic
        self.output_topic = output_topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self._hub: Hub | None = None
        self._stop = threading.Event()
        self._consuming = threading.Event()
        """Set once the consumer holds its partitions: results from then on reach subscribers."""
        self._consumer_thread: threading.Thread | None = None

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    def _tenant(self, scope: asgi.Scope) -> str | None:
        """The caller's tenant: "" without auth, its key's digest prefix, or None (refused)."""
        if not self.keys.required:
            return ""
        tenant = self.keys.tenant(_header(scope, b"authorization"))
        if tenant is None:
            for offered in scope.get("subprotocols") or ():
                token = _TOKEN_SUBPROTOCOL.match(offered)
                if token is not None:
                    tenant = self.keys.tenant(b"Bearer " + token.group(1).encode())
                    break
        return tenant

    def _origin_refused(self, scope: asgi.Scope) -> bool:
        """A browser's page not in `allowed_origins` (clients without an Origin are no pages)."""
        origin = _header(scope, b"origin")
        return origin is not None and origin.decode("latin-1") not in self._origins

    async def _http(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        path, method = scope["path"], scope["method"]
        if path in ("/healthz", "/readyz"):
            await _send(send, 200, b'{"status":"ok"}')
            return
        if path not in ("/events", "/events/results"):
            await _send(send, 404, _error("not found"))
            return
        if self._origin_refused(scope):
            await _send(send, 403, _error("this page's origin is not in push.allowedOrigins"))
            return
        cors = _cors_headers(_header(scope, b"origin"))
        if method == "OPTIONS":
            await _send(send, 204, b"", headers=[*cors, *_PREFLIGHT])
            return
        tenant = self._tenant(scope)
        if tenant is None:
            await _send(
                send, 401, _error("send a valid key as 'Authorization: Bearer <key>'"), headers=cors
            )
        elif path == "/events" and method == "POST":
            await self._ingest(scope, receive, send, tenant=tenant, headers=cors)
        elif path == "/events/results" and method == "GET":
            key, prefix = _subscription(scope, tenant)
            await self._sse(key, send, prefix=prefix, headers=cors)
        else:
            await _send(send, 405, _error(f"{method} is not allowed on {path}"), headers=cors)

    async def _ingest(
        self,
        scope: asgi.Scope,
        receive: asgi.Receive,
        send: asgi.Send,
        *,
        tenant: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        content_type = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            # text/plain is what a cross-site form or a preflight-free fetch would send.
            await _send(send, 415, _error("send Content-Type: application/json"), headers=headers)
            return
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send(send, 413, _error(f"the body exceeds {limit} bytes"), headers=headers)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            await _send(send, 400, _error(f"the body is not JSON: {error}"), headers=headers)
            return
        batch = parsed if isinstance(parsed, list) else [parsed]
        problem = self._batch_problem(batch)
        if problem is not None:
            status, reason = problem
            await _send(send, status, _error(reason), headers=headers)
            return
        keys = []
        context = spans.passed_on(_header(scope, b"traceparent"), _header(scope, b"tracestate"))
        trace_headers: list[tuple[str, str | bytes | None]] | None = (
            None if context is None else list(context.items())
        )
        for event in batch:
            key = str(event.get("id") or uuid.uuid4().hex)
            if tenant:
                key = f"{tenant}:{key}"
            self._producer.produce(
                self.input_topic, key=key, value=orjson.dumps(event), headers=trace_headers
            )
            keys.append(key)
        self._producer.poll(0)
        await asyncio.to_thread(self._producer.flush, 10)
        await _send(send, 202, orjson.dumps({"accepted": len(keys), "keys": keys}), headers=headers)

    def _batch_problem(self, batch: list[object]) -> tuple[int, str] | None:
        if len(batch) > self.settings.max_events_per_request:
            return 413, f"send at most {self.settings.max_events_per_request} events at once"
        for event in batch:
            if not isinstance(event, dict):
                return 400, "send a JSON object or an array of objects"
            event_id = event.get("id")
            if event_id is not None and (
                not isinstance(event_id, str | int)
                or isinstance(event_id, bool)
                or len(str(event_id)) > MAX_ID_LENGTH
            ):
                return 400, f"id: a string or integer of at most {MAX_ID_LENGTH} characters"
        return None

    async def _sse(
        self,
        key: str | None,
        send: asgi.Send,
        *,
        prefix: str | None,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        assert self._hub is not None
        queue = self._hub.subscribe(key, prefix=prefix)
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            *headers,
        ]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(
                {"type": "http.response.body", "body": b": subscribed\n\n", "more_body": True}
            )
            while True:
                record = await queue.get()
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: " + record + b"\n\n",
                        "more_body": True,
                    }
                )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._hub.unsubscribe(queue)

    async def _websocket(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        assert self._hub is not None
        if (await receive())["type"] != "websocket.connect":
            return
        tenant = self._tenant(scope)
        if self._origin_refused(scope) or tenant is None:
            # Closing before accepting answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        offered = scope.get("subprotocols") or ()
        accept: dict[str, object] = {"type": "websocket.accept"}
        if SUBPROTOCOL in offered:
            accept["subprotocol"] = SUBPROTOCOL
        await send(accept)
        key, prefix = _subscription(scope, tenant)
        queue = self._hub.subscribe(key, prefix=prefix)

        async def forward() -> None:
            while True:
                await send({"type": "websocket.send", "text": (await queue.get()).decode()})

        forwarding = asyncio.ensure_future(forward())
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await forwarding
            self._hub.unsubscribe(queue)

    async def _lifespan(self, receive: asgi.Receive, send: asgi.Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._hub = Hub(asyncio.get_running_loop())
                if self.keys.required:
                    self._keys_watch = asyncio.get_running_loop().create_task(self.keys.watch())
                self._consumer_thread = threading.Thread(target=self._consume, daemon=True)
                self._consumer_thread.start()
                # Served (and so ready) once results are read: a result written before that
                # would be past the end the consumer starts from. Kafka away: served after
                # the wait all the same, as before.
                await asyncio.to_thread(self._consuming.wait, CONSUMER_START_S)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._stop.set()
                if self._keys_watch is not None:
                    self._keys_watch.cancel()
                if self._consumer_thread is not None:
                    await asyncio.to_thread(self._consumer_thread.join, 5)
                await asyncio.to_thread(self._producer.flush, 5)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _consume(self) -> None:
        """Reads the output topic from its end (new results only) until the app stops."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"tiers-push-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        try:
            metadata = consumer.list_topics(self.output_topic, timeout=10)
            partitions = metadata.topics[self.output_topic].partitions
            consumer.assign(
                [
                    TopicPartition(self.output_topic, p, _end(consumer, self.output_topic, p))
                    for p in partitions
                ]
            )
            self._consuming.set()
            assert self._hub is not None
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                key, value = message.key(), message.value()
                if value is not None:
                    self._hub.publish_threadsafe(key.decode() if key else None, value)
        finally:
            consumer.close()


def _end(consumer: Consumer, topic: str, partition: int) -> int:
    return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])


def _key_filter(scope: asgi.Scope) -> str | None:
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    keys: list[str] = query.get("key", [])
    return keys[0] if keys else None


def _subscription(scope: asgi.Scope, tenant: str) -> tuple[str | None, str | None]:
    """The Kafka key a subscriber asks for (its id under its tenant) and its tenant's prefix."""
    key = _key_filter(scope)
    if not tenant:
        return key, None
    prefix = f"{tenant}:"
    if key is not None and not key.startswith(prefix):
        key = prefix + key
    return key, prefix


def _header(scope: asgi.Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST"),
    (b"access-control-allow-headers", b"authorization, content-type, traceparent, tracestate"),
    (b"access-control-max-age", b"600"),
]


def _cors_headers(origin: bytes | None) -> list[tuple[bytes, bytes]]:
    """For an allowed page's request: its origin echoed (never `*`, as keys are sent)."""
    if origin is None:
        return []
    return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]


def _error(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})


async def _send(send: asgi.Send, status: int, body: bytes, *, headers: asgi.Headers = ()) -> None:
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
