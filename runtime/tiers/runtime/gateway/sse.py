"""Server-sent events of OpenAI streams: split them, rebuild the whole response from the
chunks (to cache and to price it), and replay a cached response as chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
COST_COMMENT = b": tiers-cost-usd="
"""Starts the comment that carries a streamed answer's cost just before its [DONE]: the headers
leave before a backend's usage arrives, and SSE clients (the openai SDK's among them) skip
comments."""


class EventTooLarge(ValueError):
    """One event outgrew the splitter's bound: the stream is cut rather than buffered on."""


class EventSplitter:
    """Cuts a byte stream into complete SSE events (`...\\n\\n`), whatever the TCP chunking;
    an event that grows past `max_event_bytes` raises `EventTooLarge`."""

    def __init__(self, max_event_bytes: int = 1024 * 1024) -> None:
        self._buffer = b""
        self._max = max_event_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data.replace(b"\r\n", b"\n")
        *events, self._buffer = self._buffer.split(b"\n\n")
        if len(self._buffer) > self._max:
            raise EventTooLarge(f"an event of the stream exceeds {self._max} bytes")
        return [event + b"\n\n" for event in events if event.strip()]


def cost_comment(cost_usd: str) -> bytes:
    return COST_COMMENT + cost_usd.encode() + b"\n\n"


def error_event(error_body: bytes) -> bytes:
    """An OpenAI-style error (`{"error": {...}}`) as the event that ends a broken stream."""
    return b"data: " + error_body + b"\n\n"


def event_data(event: bytes) -> bytes | None:
    """The data of one event (data lines joined), or None for comments and other fields."""
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _new_slot() -> dict[str, Any]:
    return {"role": "assistant", "content": "", "finish": None, "tool_calls": {}, "function": None}


def _append(target: dict[str, Any], name: str, value: object) -> None:
    if isinstance(value, str):
        target[name] = (target.get(name) or "") + value


class ChatAccumulator:
    """Rebuilds a `chat.completion` (or `text_completion`) from its streamed chunks, tool calls
    included; what does not have the shape of a chunk is skipped, never an error."""

    def __init__(self) -> None:
        self.first: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.complete = False

    def add(self, chunk: object) -> None:
        if not isinstance(chunk, dict):
            return
        if self.first is None:
            self.first = chunk
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool):
                continue
            slot = self.choices.setdefault(index, _new_slot())
            delta = choice.get("delta")
            if delta is None:  # legacy completions stream text, not deltas
                _append(slot, "content", choice.get("text"))
            elif isinstance(delta, dict):
                self._add_delta(slot, delta)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                slot["finish"] = finish

    @staticmethod
    def _add_delta(slot: dict[str, Any], delta: dict[str, Any]) -> None:
        role = delta.get("role")
        if isinstance(role, str) and role:
            slot["role"] = role
        _append(slot, "content", delta.get("content"))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            position = call.get("index", len(slot["tool_calls"]))
            if not isinstance(position, int) or isinstance(position, bool):
                continue
            whole = slot["tool_calls"].setdefault(
                position,
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            for name in ("id", "type"):
                if isinstance(call.get(name), str):
                    whole[name] = call[name]
            function = call.get("function")
            if isinstance(function, dict):
                _append(whole["function"], "name", function.get("name"))
                _append(whole["function"], "arguments", function.get("arguments"))
        function = delta.get("function_call")
        if isinstance(function, dict):
            whole_function = slot["function"] = slot["function"] or {"name": "", "arguments": ""}
            _append(whole_function, "name", function.get("name"))
            _append(whole_function, "arguments", function.get("arguments"))

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
                "message": _message(slot),
                "finish_reason": slot["finish"],
                "logprobs": None,
            }
            if chat
            else {
                "index": index,
                "text": slot["content"],
                "finish_reason": slot["finish"],
                "logprobs": None,
            }
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


def _message(slot: dict[str, Any]) -> dict[str, Any]:
    calls = [slot["tool_calls"][position] for position in sorted(slot["tool_calls"])]
    message: dict[str, Any] = {"role": slot["role"], "content": slot["content"]}
    if calls or slot["function"] is not None:
        # OpenAI's answer that calls a tool has no text: content is null, not "".
        message["content"] = slot["content"] or None
    if calls:
        message["tool_calls"] = calls
    if slot["function"] is not None:
        message["function_call"] = slot["function"]
    return message


def replay(response: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A cached response as the chunks a streaming client expects, ending with [DONE]: chat
    chunks for a chat completion, text chunks for a (legacy) completion."""
    chat = response.get("object") != "text_completion"
    base = {
        "id": response.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": response.get("created"),
        "model": response.get("model"),
    }
    choices = response.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        pieces = _chat_pieces(choice, index) if chat else _text_pieces(choice, index)
        for piece in pieces:
            yield b"data: " + orjson.dumps({**base, "choices": [piece]}) + b"\n\n"
    if include_usage and response.get("usage"):
        yield (
            b"data: " + orjson.dumps({**base, "choices": [], "usage": response["usage"]}) + b"\n\n"
        )
    yield DONE


def _chat_pieces(choice: dict[str, Any], index: object) -> Iterator[dict[str, Any]]:
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    deltas: list[dict[str, Any]] = [
        {"role": message.get("role", "assistant"), "content": ""},
        {"content": message.get("content") or ""},
    ]
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        deltas.append(
            {
                "tool_calls": [
                    {**call, "index": position}
                    for position, call in enumerate(calls)
                    if isinstance(call, dict)
                ]
            }
        )
    if isinstance(message.get("function_call"), dict):
        deltas.append({"function_call": message["function_call"]})
    for delta in deltas:
        yield {"index": index, "delta": delta, "finish_reason": None}
    yield {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}


def _text_pieces(choice: dict[str, Any], index: object) -> Iterator[dict[str, Any]]:
    text = choice.get("text")
    yield {"index": index, "text": text if isinstance(text, str) else "", "finish_reason": None,
           "logprobs": None}  # fmt: skip
    yield {"index": index, "text": "", "finish_reason": choice.get("finish_reason"),
           "logprobs": None}  # fmt: skip
