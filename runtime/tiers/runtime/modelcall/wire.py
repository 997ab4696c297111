"""The OpenAI wire format as the model client needs it: the request body for one row (or, for
completions and embeddings, a list of rows), and the reply read back into text, usage and
finish reason per row.

Pure functions, called by `client.ModelClient` for each request; the backend turns a body into
its payload (`providers.backends`), and error bodies are read where every caller reads them
(`providers.failures`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson

from tiers.runtime import pricing
from tiers.runtime.modelcall import config
from tiers.runtime.providers import routes


@dataclasses.dataclass(frozen=True)
class Reply:
    output: str
    usage: pricing.Usage
    finish_reason: str | None


def request_body(settings: config.ModelCallConfig, prompt: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": settings.model}
    if settings.route == "embeddings":
        body["input"] = prompt
        return body
    if settings.route == "chat":
        system = [{"role": "system", "content": settings.system}] if settings.system else []
        body["messages"] = [*system, {"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if settings.max_tokens is not None:
        body["max_tokens"] = settings.max_tokens
    return body


def batch_body(settings: config.ModelCallConfig, prompts: Sequence[str]) -> dict[str, Any]:
    """One request for several rows: `prompt` (completions) or `input` (embeddings) as a list."""
    if settings.route == "chat":
        raise ValueError("chat takes one conversation per request")
    body: dict[str, Any] = {"model": settings.model}
    if settings.route == "embeddings":
        body["input"] = list(prompts)
        return body
    body["prompt"] = list(prompts)
    if settings.max_tokens is not None:
        body["max_tokens"] = settings.max_tokens
    return body


def parse_batch_reply(route: routes.Route, raw: bytes, count: int) -> list[Reply | str]:
    """Per row of a `batch_body` request: its Reply, or why the reply has none for it.

    The server reports usage for the whole request; each row gets an even share (the first rows
    take the remainder), so the rows' tokens and costs add up to the request's exactly.
    ValueError when the body is not a reply at all.
    """
    try:
        body = orjson.loads(raw)
        usage = pricing.Usage.from_openai(body.get("usage"))
        items = body["data"] if route == "embeddings" else body["choices"]
        found: dict[int, Any] = {int(item.get("index", i)): item for i, item in enumerate(items)}
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"unexpected reply body ({type(error).__name__}: {error})") from None
    shares = _split(usage, count)
    noun = "embedding" if route == "embeddings" else "choice"
    replies: list[Reply | str] = []
    for i in range(count):
        item = found.get(i)
        if not isinstance(item, dict):
            replies.append(f"the reply has no {noun} for row {i} of {count}")
        elif route == "embeddings":
            replies.append(Reply(orjson.dumps(item.get("embedding")).decode(), shares[i], None))
        else:
            replies.append(Reply(item.get("text") or "", shares[i], item.get("finish_reason")))
    return replies


def _split(usage: pricing.Usage, count: int) -> list[pricing.Usage]:
    """`count` shares of `usage` that add up to it: equal, the first rows taking one more of each
    remainder."""
    totals = (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    )
    base = [total // count for total in totals]
    remainders = [total % count for total in totals]
    even = pricing.Usage(*base)
    return [
        pricing.Usage(*(b + (i < r) for b, r in zip(base, remainders, strict=True)))
        if i < max(remainders)
        else even
        for i in range(count)
    ]


def parse_reply(route: routes.Route, raw: bytes) -> Reply:
    """The first choice (or embedding) of a 2xx body; ValueError when it is not one."""
    try:
        body = orjson.loads(raw)
        usage = pricing.Usage.from_openai(body.get("usage"))
        if route == "embeddings":
            vector = body["data"][0]["embedding"]
            return Reply(orjson.dumps(vector).decode(), usage, None)
        choice = body["choices"][0]
        text = choice["message"].get("content") if route == "chat" else choice.get("text")
        return Reply(text or "", usage, choice.get("finish_reason"))
    except (orjson.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError) as error:
        raise ValueError(f"unexpected reply body ({type(error).__name__}: {error})") from None
