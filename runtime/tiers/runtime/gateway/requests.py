"""Reading a client's request: parse the JSON body, check the fields a backend would reject
anyway, and answer an OpenAI-style 400 that names the field instead of a 502 from upstream."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from tiers.runtime.gateway import errors
from tiers.runtime.providers import routes

ROUTES: dict[bytes, routes.Route] = {
    b"/v1/chat/completions": "chat",
    b"/v1/completions": "completions",
    b"/v1/embeddings": "embeddings",
}
"""The gateway's own paths, as OpenAI's clients call them."""
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Fields that change how a response is delivered or labelled, not what it says.
NOT_IN_CACHE_KEY = frozenset({"stream", "stream_options", "user", "metadata", "store"})


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    route: routes.Route
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    max_output_tokens: int

    def cache_material(self) -> dict[str, Any]:
        return {k: v for k, v in self.body.items() if k not in NOT_IN_CACHE_KEY}

    def estimated_tokens(self) -> int:
        """An upper-bound guess of tokens before the call, for token rate limits."""
        return estimate_prompt_tokens(self.body) + self.max_output_tokens


def parse(route: routes.Route, raw: bytes) -> ModelRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise errors.GatewayError(400, f"The body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise errors.GatewayError(400, "The body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.invalid("model", "required, a non-empty string")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise errors.invalid("stream", "must be true or false")
    if stream and route == "embeddings":
        raise errors.invalid("stream", "embeddings cannot be streamed")
    _check_route_fields(route, body)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ModelRequest(
        route=route,
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_output_tokens=_max_output_tokens(body),
    )


def _check_route_fields(route: routes.Route, body: dict[str, Any]) -> None:
    if route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise errors.invalid("messages", "required, a non-empty array of messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise errors.invalid(f"messages[{i}]", "must be an object with role and content")
            if message.get("role") not in ROLES:
                raise errors.invalid(
                    f"messages[{i}].role", f"must be one of {', '.join(sorted(ROLES))}"
                )
            content = message.get("content")
            if content is not None and not isinstance(content, str | list):
                raise errors.invalid(
                    f"messages[{i}].content", "must be a string or an array of parts"
                )
    elif route == "completions":
        if not isinstance(body.get("prompt"), str | list):
            raise errors.invalid("prompt", "required, a string or an array of strings")
    else:
        value = body.get("input")
        if not isinstance(value, str | list) or not value:
            raise errors.invalid("input", "required, a non-empty string or array")
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise errors.invalid(name, f"must be a number from {low} to {high}")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise errors.invalid(name, "must be an integer of at least 1")


def _max_output_tokens(body: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value * int(body.get("n") or 1)
    return 256


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """About four characters a token, as OpenAI's own rule of thumb says."""
    text = body.get("messages") or body.get("prompt") or body.get("input") or ""
    return max(1, len(orjson.dumps(text)) // 4)
