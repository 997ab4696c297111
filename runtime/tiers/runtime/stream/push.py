"""The push gateway: events in over HTTP, results out to browsers over SSE and WebSocket.

    POST /events           a JSON object, or an array of them, produced to the input topic
                           (the Kafka key is the object's "id" when it has one)
    GET  /events/results   SSE of result records; ?key=ID for one event's result only
    WS   /events/ws        the same records over a WebSocket; ?key=ID filters too

One consumer thread reads the output topic from its end and fans records out to subscribers;
a slow subscriber loses its oldest records rather than slowing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.parse
import uuid

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from tiers.runtime import asgi

QUEUE_SIZE = 1000


class Hub:
    """Subscribers' queues, filled from the consumer thread through the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[asyncio.Queue[bytes], str | None] = {}

    def subscribe(self, key: str | None) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)
        self._queues[queue] = key
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._queues.pop(queue, None)

    def publish_threadsafe(self, key: str | None, record: bytes) -> None:
        self._loop.call_soon_threadsafe(self._publish, key, record)

    def _publish(self, key: str | None, record: bytes) -> None:
        for queue, wanted in self._queues.items():
            if wanted is not None and wanted != key:
                continue
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(record)


class PushGateway:
    def __init__(self, *, bootstrap: str, input_topic: str, output_topic: str) -> None:
        self.bootstrap = bootstrap
        self.input_topic = input_topic
        self.output_topic = output_topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self._hub: Hub | None = None
        self._stop = threading.Event()
        self._consumer_thread: threading.Thread | None = None

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/events" and method == "POST":
            await self._ingest(receive, send)
        elif path == "/events/results" and method == "GET":
            await self._sse(_key_filter(scope), send)
        elif path in ("/healthz", "/readyz"):
            await _send(send, 200, b'{"status":"ok"}')
        else:
            await _send(send, 404, b'{"error":{"message":"not found"}}')

    async def _ingest(self, receive: asgi.Receive, send: asgi.Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            await _send(send, 400, _error(f"the body is not JSON: {error}"))
            return
        batch = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(event, dict) for event in batch):
            await _send(send, 400, _error("send a JSON object or an array of objects"))
            return
        keys = []
        for event in batch:
            key = str(event.get("id") or uuid.uuid4().hex)
            self._producer.produce(self.input_topic, key=key, value=orjson.dumps(event))
            keys.append(key)
        self._producer.poll(0)
        await asyncio.to_thread(self._producer.flush, 10)
        await _send(send, 202, orjson.dumps({"accepted": len(keys), "keys": keys}))

    async def _sse(self, key: str | None, send: asgi.Send) -> None:
        assert self._hub is not None
        queue = self._hub.subscribe(key)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
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
        await send({"type": "websocket.accept"})
        queue = self._hub.subscribe(_key_filter(scope))

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
                self._consumer_thread = threading.Thread(target=self._consume, daemon=True)
                self._consumer_thread.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._stop.set()
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
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
    keys: list[str] = query.get("key", [])
    return keys[0] if keys else None


def _error(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})


async def _send(send: asgi.Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
