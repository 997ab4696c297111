"""Request bodies checked and turned into typed values; every rejection names its field.

The app calls `chat`, `completion` or `embedding` with the raw body; they return frozen values or
raise `errors.ApiError` (400) whose `param` is the offending field, as OpenAI does.
"""

import dataclasses
from typing import Any

import orjson

from tiers.runtime.mockllm import errors, tokens

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ENCODINGS = frozenset({"float", "base64"})


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """A chat or text completion: what to echo, how far, and how to deliver it."""

    model: str
    sources: tuple[str, ...]
    """One text per choice to derive the reply from."""
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    tool: str | None = None
    """The function a chat's `tool_choice` forces: the reply is a call to it, not text."""
    text: str = ""
    """The whole prompt, whose prefixes a prompt cache remembers."""


@dataclasses.dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    prompt_tokens: int
    dimensions: int | None
    encoding_format: str


def chat(body: bytes, *, default_model: str | None = None) -> GenerationRequest:
    data = _load(body)
    model = _model(data, default_model)
    messages = data.get("messages")
    if messages is None:
        raise errors.missing("messages")
    if not isinstance(messages, list):
        raise errors.bad_type("messages", "an array of message objects")
    if not messages:
        raise errors.invalid_request(
            "'messages' must contain at least one message.", param="messages", code="empty_array"
        )
    contents = [_message_text(i, m) for i, m in enumerate(messages)]
    roles = [m["role"] for m in messages]
    last_user = next(
        (c for r, c in zip(reversed(roles), reversed(contents), strict=True) if r == "user"), None
    )
    max_tokens = _max_tokens(data, "max_completion_tokens") or _max_tokens(data, "max_tokens")
    stream, include_usage = _streaming(data)
    _check_n(data)
    return GenerationRequest(
        model=model,
        sources=(contents[-1] if last_user is None else last_user,),
        prompt_tokens=tokens.estimate_chat(contents),
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        tool=_forced_tool(data),
        text="\n".join(contents),
    )


def _forced_tool(data: dict[str, Any]) -> str | None:
    choice = data.get("tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) and name else None


def completion(body: bytes, *, default_model: str | None = None) -> GenerationRequest:
    data = _load(body)
    model = _model(data, default_model)
    prompts = _texts(data, "prompt")
    stream, include_usage = _streaming(data)
    _check_n(data)
    return GenerationRequest(
        model=model,
        sources=prompts,
        prompt_tokens=sum(tokens.estimate(p) for p in prompts),
        max_tokens=_max_tokens(data, "max_tokens"),
        stream=stream,
        include_usage=include_usage,
        text="\n".join(prompts),
    )


def embedding(body: bytes, *, default_model: str | None = None) -> EmbeddingRequest:
    data = _load(body)
    model = _model(data, default_model)
    inputs = _texts(data, "input")
    dimensions = data.get("dimensions")
    if dimensions is not None and not _positive_int(dimensions):
        raise errors.bad_type("dimensions", "an integer >= 1")
    encoding_format = data.get("encoding_format", "float")
    if encoding_format not in _ENCODINGS:
        raise errors.invalid_request(
            "'encoding_format' must be one of 'float', 'base64'.", param="encoding_format"
        )
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        prompt_tokens=sum(tokens.estimate(i) for i in inputs),
        dimensions=dimensions,
        encoding_format=encoding_format,
    )


def _load(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise errors.invalid_request(
            f"We could not parse the JSON body of your request: {e}.",
            param=None,
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise errors.invalid_request("The request body must be a JSON object.", param=None)
    return data


def _model(data: dict[str, Any], default: str | None) -> str:
    model = data.get("model", default)
    if model is None:
        raise errors.missing("model")
    if not isinstance(model, str) or not model:
        raise errors.bad_type("model", "a non-empty string")
    return model


def _message_text(index: int, message: object) -> str:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise errors.bad_type(where, "an object with 'role' and 'content'")
    role = message.get("role")
    if role is None:
        raise errors.missing(f"{where}.role")
    if role not in _ROLES:
        raise errors.invalid_request(
            f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}.", param=f"{where}.role"
        )
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return " ".join(_part_text(f"{where}.content[{i}]", p) for i, p in enumerate(content))
    raise errors.bad_type(f"{where}.content", "a string, an array of content parts or null")


def _part_text(where: str, part: object) -> str:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise errors.bad_type(where, "an object with a 'type'")
    text = part.get("text", "")
    if not isinstance(text, str):
        raise errors.bad_type(f"{where}.text", "a string")
    return text


def _texts(data: dict[str, Any], param: str) -> tuple[str, ...]:
    """A string, an array of strings, or token arrays (rendered as their numbers)."""
    value = data.get(param)
    if value is None:
        raise errors.missing(param)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return tuple(value)
        if all(isinstance(v, int) for v in value):
            return (" ".join(map(str, value)),)
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return tuple(" ".join(map(str, v)) for v in value)
    raise errors.bad_type(param, "a string, a non-empty array of strings, or token arrays")


def _max_tokens(data: dict[str, Any], param: str) -> int | None:
    value = data.get(param)
    if value is not None and not _positive_int(value):
        raise errors.bad_type(param, "an integer >= 1")
    return value


def _streaming(data: dict[str, Any]) -> tuple[bool, bool]:
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise errors.bad_type("stream", "a boolean")
    options = data.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise errors.bad_type("stream_options", "an object")
    if not stream:
        raise errors.invalid_request(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise errors.bad_type("stream_options.include_usage", "a boolean")
    return stream, include_usage


def _check_n(data: dict[str, Any]) -> None:
    n = data.get("n")
    if n is not None and n != 1:
        raise errors.invalid_request("mockllm supports only 'n': 1.", param="n")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
