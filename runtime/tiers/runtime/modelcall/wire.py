"""The OpenAI wire format as the model client needs it: one request body per row, and the reply
or error body read back into text, usage and finish reason.

Pure functions over bytes, called by `client.ModelClient` for each attempt.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from tiers.runtime import pricing
from tiers.runtime.gateway import requests
from tiers.runtime.modelcall import config


@dataclasses.dataclass(frozen=True)
class Reply:
    output: str
    usage: pricing.Usage
    finish_reason: str | None


def request_body(settings: config.ModelCallConfig, prompt: str) -> bytes:
    body: dict[str, Any] = {"model": settings.model}
    if settings.route == "embeddings":
        body["input"] = prompt
        return orjson.dumps(body)
    if settings.route == "chat":
        system = [{"role": "system", "content": settings.system}] if settings.system else []
        body["messages"] = [*system, {"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if settings.max_tokens is not None:
        body["max_tokens"] = settings.max_tokens
    return orjson.dumps(body)


def parse_reply(route: requests.Route, raw: bytes) -> Reply:
    """The first choice (or embedding) of a 2xx body; ValueError when it is not one."""
    try:
        body = orjson.loads(raw)
        usage = _usage(body.get("usage") or {})
        if route == "embeddings":
            vector = body["data"][0]["embedding"]
            return Reply(orjson.dumps(vector).decode(), usage, None)
        choice = body["choices"][0]
        text = choice["message"].get("content") if route == "chat" else choice.get("text")
        return Reply(text or "", usage, choice.get("finish_reason"))
    except (orjson.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError) as error:
        raise ValueError(f"unexpected reply body ({type(error).__name__}: {error})") from None


def error_message(status: int, raw: bytes) -> str:
    """`HTTP 429: <the server's message>`, from an OpenAI-style error body where there is one."""
    try:
        message = str(orjson.loads(raw)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = raw[:200].decode(errors="replace").strip()
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


def _usage(usage: dict[str, Any]) -> pricing.Usage:
    details = usage.get("prompt_tokens_details") or {}
    return pricing.Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )
