"""Reading a client's request: parse the JSON body, check the fields a backend would reject
anyway, and answer an OpenAI-style 400 that names the field instead of a 502 from upstream."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
MAX_DEPTH = 64
"""Nesting of a body's arrays and objects: a JSON schema of a tool is far shallower, and the cache
key's serialiser (like every JSON encoder) stops at a few hundred levels."""
MAX_MODEL_NAME = 256
MAX_OUTPUT_TOKENS = 10_000_000
MAX_CHOICES = 128
Check = Callable[[str, Any], None]
"""Raises `errors.invalid(name, ...)` when a field's value (present, not null) is not allowed."""
_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true or false",
               int: "an integer"}  # fmt: skip


def _typed(*kinds: type) -> Check:
    allowed = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
    # JSON's true is no integer, though Python's bool is an int.
    refuses_bool = bool not in kinds

    def check(name: str, value: Any) -> None:
        if not isinstance(value, kinds) or (refuses_bool and value.__class__ is bool):
            raise errors.invalid(name, f"must be {allowed}")

    return check


def _number_from(low: float, high: float) -> Check:
    def check(name: str, value: Any) -> None:
        if not _is_number(value) or not low <= value <= high:
            raise errors.invalid(name, f"must be a number from {low:g} to {high:g}")

    return check


def _integer_from(low: int, high: int | None = None) -> Check:
    def check(name: str, value: Any) -> None:
        if not _is_int(value) or value < low or (high is not None and value > high):
            range_ = f" from {low} to {high}" if high is not None else f" of at least {low}"
            raise errors.invalid(name, f"must be an integer{range_}")

    return check


def _integer(name: str, value: Any) -> None:
    if not _is_int(value):
        raise errors.invalid(name, "must be an integer")


def _objects(name: str, value: Any) -> None:
    """An array of objects (tools, functions)."""
    _ARRAY(name, value)
    for j, item in enumerate(value):
        if not isinstance(item, dict):
            raise errors.invalid(f"{name}[{j}]", "must be an object")


def _stop(name: str, value: Any) -> None:
    _STRING_OR_ARRAY(name, value)
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise errors.invalid(name, "must be a string or an array of strings")


def _stream_options(name: str, value: Any) -> None:
    _OBJECT(name, value)
    if not isinstance(value.get("include_usage", False), bool):
        raise errors.invalid(f"{name}.include_usage", "must be true or false")


_OBJECT, _ARRAY, _STRING, _BOOL = _typed(dict), _typed(list), _typed(str), _typed(bool)
_STRING_OR_ARRAY, _STRING_OR_OBJECT = _typed(str, list), _typed(str, dict)
_COMMON_FIELDS: dict[str, Check] = {
    "temperature": _number_from(0, 2),
    "top_p": _number_from(0, 1),
    "max_tokens": _integer_from(1, MAX_OUTPUT_TOKENS),
    "max_completion_tokens": _integer_from(1, MAX_OUTPUT_TOKENS),
    "n": _integer_from(1, MAX_CHOICES),
    "best_of": _integer_from(1, MAX_CHOICES),
    "presence_penalty": _number_from(-2, 2),
    "frequency_penalty": _number_from(-2, 2),
    "seed": _integer,
    "top_logprobs": _integer,
    "stream_options": _stream_options,
    "metadata": _OBJECT,
    "logit_bias": _OBJECT,
    "response_format": _OBJECT,
    "tools": _objects,
    "functions": _objects,
    "tool_choice": _STRING_OR_OBJECT,
    "function_call": _STRING_OR_OBJECT,
    "parallel_tool_calls": _BOOL,
    "logprobs": _typed(bool, int),
    "echo": _BOOL,
    "store": _BOOL,
    "user": _STRING,
    "suffix": _STRING,
    "service_tier": _STRING,
    "reasoning_effort": _STRING,
    "encoding_format": _STRING,
    "stop": _stop,
    "modalities": _ARRAY,
}
_FIELDS: dict[routes.Route, dict[str, Check]] = {
    "chat": _COMMON_FIELDS,
    "completions": _COMMON_FIELDS,
    "embeddings": {**_COMMON_FIELDS, "dimensions": _integer_from(1)},
}
"""The optional fields a backend reads, by route: each present one is checked in one pass over
the body, so a request pays for the fields it sends, not for every field there is."""
_MESSAGE_FIELDS: dict[str, Check] = {
    "name": _STRING,
    "tool_call_id": _STRING,
    "tool_calls": _objects,
    "function_call": _OBJECT,
    "refusal": _STRING,
}


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
    # Nesting needs as many brackets: a body with few of them is walked no further.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth_exceeds(body, MAX_DEPTH):
        raise errors.GatewayError(400, f"The body nests arrays and objects over {MAX_DEPTH} deep.")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise errors.invalid("model", f"required, a string of 1 to {MAX_MODEL_NAME} characters")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise errors.invalid("stream", "must be true or false")
    if stream and route == "embeddings":
        raise errors.invalid("stream", "embeddings cannot be streamed")
    _check_required(route, body)
    fields = _FIELDS[route]
    for name, value in body.items():
        check = fields.get(name)
        if check is not None and value is not None:
            check(name, value)
    options = body.get("stream_options")
    return ModelRequest(
        route=route,
        body=body,
        model=model,
        stream=stream,
        include_usage=options.get("include_usage", False) if options else False,
        max_output_tokens=_max_output_tokens(body),
    )


def _check_required(route: routes.Route, body: dict[str, Any]) -> None:
    if route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise errors.invalid("messages", "required, a non-empty array of messages")
        for i, message in enumerate(messages):
            _check_message(i, message)
    elif route == "completions":
        if not _is_prompt(body.get("prompt")):
            raise errors.invalid(
                "prompt", "required, a string, an array of strings or of token arrays"
            )
    else:
        value = body.get("input")
        if not _is_prompt(value) or not value:
            raise errors.invalid("input", "required, a non-empty string or array")


def _check_message(i: int, message: object) -> None:
    if not isinstance(message, dict):
        raise errors.invalid(f"messages[{i}]", "must be an object with role and content")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise errors.invalid(f"messages[{i}].role", f"must be one of {', '.join(sorted(ROLES))}")
    content = message.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict | str) or (
                isinstance(part, dict) and not isinstance(part.get("type"), str)
            ):
                raise errors.invalid(
                    f"messages[{i}].content[{j}]", "must be an object with a string type"
                )
    elif content is not None and not isinstance(content, str):
        raise errors.invalid(f"messages[{i}].content", "must be a string or an array of parts")
    if len(message) > 2 or content is None:  # more than role and content
        for name, value in message.items():
            check = _MESSAGE_FIELDS.get(name)
            if check is not None and value is not None:
                check(f"messages[{i}].{name}", value)


def _is_prompt(value: object) -> bool:
    """A string, or an array of strings, of token ids or of token-id arrays (OpenAI's forms)."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list):
        return False
    return all(
        isinstance(item, str)
        or _is_int(item)
        or (isinstance(item, list) and all(_is_int(token) for token in item))
        for item in value
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _depth_exceeds(value: object, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (iteratively: no recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


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
