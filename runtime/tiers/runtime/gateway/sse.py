"""Server-sent events of OpenAI streams: split them, rebuild the whole response from the
chunks (to cache and to price it), and replay a cached response as chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


class EventSplitter:
    """Cuts a byte stream into complete SSE events (`...\\n\\n`), whatever the TCP chunking."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data.replace(b"\r\n", b"\n")
        *events, self._buffer = self._buffer.split(b"\n\n")
        return [event + b"\n\n" for event in events if event.strip()]


def event_data(event: bytes) -> bytes | None:
    """The data of one event (data lines joined), or None for comments and other fields."""
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


class ChatAccumulator:
    """Rebuilds a `chat.completion` (or `text_completion`) from its streamed chunks."""

    def __init__(self) -> None:
        self.first: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.complete = False

    def add(self, chunk: dict[str, Any]) -> None:
        if self.first is None:
            self.first = chunk
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            slot = self.choices.setdefault(
                index, {"role": "assistant", "content": "", "finish": None}
            )
            delta = choice.get("delta")
            if delta is None:  # legacy completions stream text, not deltas
                slot["content"] += choice.get("text") or ""
            else:
                slot["role"] = delta.get("role") or slot["role"]
                slot["content"] += delta.get("content") or ""
            if choice.get("finish_reason"):
                slot["finish"] = choice["finish_reason"]

    def mark_done(self) -> None:
        self.complete = True

    def response(self) -> dict[str, Any] | None:
        """The whole response, or None when the stream did not finish cleanly (not cacheable)."""
        if self.first is None or not self.complete or not self.choices:
            return None
        chat = self.first.get("object") == "chat.completion.chunk"
        choices = [
            {
                "index": index,
                "message": {"role": slot["role"], "content": slot["content"]},
                "finish_reason": slot["finish"],
                "logprobs": None,
            }
            if chat
            else {"index": index, "text": slot["content"], "finish_reason": slot["finish"]}
            for index, slot in sorted(self.choices.items())
        ]
        whole = {
            "id": self.first.get("id"),
            "object": "chat.completion" if chat else "text_completion",
            "created": self.first.get("created", int(time.time())),
            "model": self.first.get("model"),
            "choices": choices,
        }
        if self.usage is not None:
            whole["usage"] = self.usage
        return whole


def replay(response: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A cached chat response as the chunks a streaming client expects, ending with [DONE]."""
    base = {
        "id": response.get("id"),
        "object": "chat.completion.chunk",
        "created": response.get("created"),
        "model": response.get("model"),
    }
    for choice in response.get("choices", ()):
        message = choice.get("message") or {}
        index = choice.get("index", 0)
        for delta, finish in (
            ({"role": message.get("role", "assistant"), "content": ""}, None),
            ({"content": message.get("content") or ""}, None),
            ({}, choice.get("finish_reason")),
        ):
            chunk = {**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    if include_usage and response.get("usage"):
        yield (
            b"data: " + orjson.dumps({**base, "choices": [], "usage": response["usage"]}) + b"\n\n"
        )
    yield DONE
