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
MAX_DEPTH = 64
"""Nesting of a body's arrays and objects: a JSON schema of a tool is far shallower, and the cache
key's serialiser (like every JSON encoder) stops at a few hundred levels."""
MAX_MODEL_NAME = 256
MAX_OUTPUT_TOKENS = 10_000_000
MAX_CHOICES = 128
# The type of each optional field a backend reads, as Python types after JSON parsing.
_OBJECT, _ARRAY, _STRING, _BOOL = dict, list, str, bool
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "stream_options": (_OBJECT,),
    "metadata": (_OBJECT,),
    "logit_bias": (_OBJECT,),
    "response_format": (_OBJECT,),
    "tools": (_ARRAY,),
    "functions": (_ARRAY,),
    "tool_choice": (_STRING, _OBJECT),
    "function_call": (_STRING, _OBJECT),
    "parallel_tool_calls": (_BOOL,),
    "logprobs": (_BOOL, int),
    "echo": (_BOOL,),
    "store": (_BOOL,),
    "user": (_STRING,),
    "suffix": (_STRING,),
    "service_tier": (_STRING,),
    "reasoning_effort": (_STRING,),
    "encoding_format": (_STRING,),
    "stop": (_STRING, _ARRAY),
    "modalities": (_ARRAY,),
}
_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true or false",
               int: "an integer"}  # fmt: skip


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
    if _depth_exceeds(body, MAX_DEPTH):
        raise errors.GatewayError(400, f"The body nests arrays and objects over {MAX_DEPTH} deep.")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise errors.invalid("model", f"required, a string of 1 to {MAX_MODEL_NAME} characters")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise errors.invalid("stream", "must be true or false")
    if stream and route == "embeddings":
        raise errors.invalid("stream", "embeddings cannot be streamed")
    _check_route_fields(route, body)
    _check_field_types(body)
    options = body.get("stream_options") or {}
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise errors.invalid("stream_options.include_usage", "must be true or false")
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
            role = message.get("role")
            if not isinstance(role, str) or role not in ROLES:
                raise errors.invalid(
                    f"messages[{i}].role", f"must be one of {', '.join(sorted(ROLES))}"
                )
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
        dimensions = body.get("dimensions")
        if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
            raise errors.invalid("dimensions", "must be an integer of at least 1")
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise errors.invalid(name, f"must be a number from {low} to {high}")
    for name, high in (
        ("max_tokens", MAX_OUTPUT_TOKENS),
        ("max_completion_tokens", MAX_OUTPUT_TOKENS),
        ("n", MAX_CHOICES),
        ("best_of", MAX_CHOICES),
    ):
        value = body.get(name)
        if value is not None and (not _is_int(value) or not 1 <= value <= high):
            raise errors.invalid(name, f"must be an integer from 1 to {high}")
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (not _is_number(value) or not -2 <= value <= 2):
            raise errors.invalid(name, "must be a number from -2 to 2")
    for name in ("seed", "top_logprobs"):
        value = body.get(name)
        if value is not None and not _is_int(value):
            raise errors.invalid(name, "must be an integer")


def _check_message(i: int, message: dict[str, Any]) -> None:
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
    for name, kinds in (
        ("name", (str,)),
        ("tool_call_id", (str,)),
        ("tool_calls", (list,)),
        ("function_call", (dict,)),
        ("refusal", (str,)),
    ):
        value = message.get(name)
        if value is not None and not isinstance(value, kinds):
            raise errors.invalid(f"messages[{i}].{name}", f"must be {_TYPE_NAMES[kinds[0]]}")
    for j, call in enumerate(message.get("tool_calls") or ()):
        if not isinstance(call, dict):
            raise errors.invalid(f"messages[{i}].tool_calls[{j}]", "must be an object")


def _check_field_types(body: dict[str, Any]) -> None:
    for name, kinds in _FIELD_TYPES.items():
        value = body.get(name)
        if value is None or (isinstance(value, kinds) and not _bool_as_int(value, kinds)):
            continue
        allowed = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
        raise errors.invalid(name, f"must be {allowed}")
    stop = body.get("stop")
    if isinstance(stop, list) and not all(isinstance(item, str) for item in stop):
        raise errors.invalid("stop", "must be a string or an array of strings")
    for name in ("tools", "functions"):
        for j, tool in enumerate(body.get(name) or ()):
            if not isinstance(tool, dict):
                raise errors.invalid(f"{name}[{j}]", "must be an object")


def _bool_as_int(value: object, kinds: tuple[type, ...]) -> bool:
    """Whether `value` is an int only by being a bool (JSON's true is no integer)."""
    return isinstance(value, bool) and bool not in kinds and int in kinds


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
