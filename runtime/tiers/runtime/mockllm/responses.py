"""Reply bodies in OpenAI's wire format: completions, SSE chunks, embeddings and the model list.

Pure functions from a validated request and its replies to bytes; the app only sends them. A
stream is a list of SSE events, so the app can send them at once or one per chunk delay.
"""

import itertools
import os
from typing import Any

import orjson

from tiers.runtime.mockllm import billing, embeddings, tokens, validation

SYSTEM_FINGERPRINT = "fp_mockllm"
DONE_EVENT = b"data: [DONE]\n\n"

# A per-process prefix and a counter make ids unique without a syscall per request.
_ID_PREFIX = os.urandom(6).hex()
_ids = itertools.count()


def new_id(prefix: str) -> str:
    return f"{prefix}-{_ID_PREFIX}{next(_ids):010x}"


def chat_completion(
    request: validation.GenerationRequest,
    replies: list[tokens.Reply],
    *,
    created: int,
    billed: billing.Usage,
) -> bytes:
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": r.text, "refusal": None},
            "logprobs": None,
            "finish_reason": r.finish_reason,
        }
        if request.tool is None
        else {
            "index": i,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [_tool_call(request.tool, i, _arguments(r))],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
        for i, r in enumerate(replies)
    ]
    return _completion("chatcmpl", "chat.completion", request, choices, created, billed)


def _arguments(reply: tokens.Reply) -> str:
    """A forced tool's arguments: the reply's text as a JSON object."""
    return orjson.dumps({"text": reply.text}).decode()


def _tool_call(name: str, index: int, arguments: str) -> dict[str, Any]:
    return {
        "id": f"call_{_ID_PREFIX}{index}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def text_completion(
    request: validation.GenerationRequest,
    replies: list[tokens.Reply],
    *,
    created: int,
    billed: billing.Usage,
) -> bytes:
    choices = [
        {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
        for i, r in enumerate(replies)
    ]
    return _completion("cmpl", "text_completion", request, choices, created, billed)


def chat_stream(
    request: validation.GenerationRequest,
    replies: list[tokens.Reply],
    *,
    created: int,
    billed: billing.Usage,
) -> list[bytes]:
    """Per choice: a role chunk, one chunk per piece, a finish chunk; then usage and [DONE]."""

    def choice(index: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    choices: list[dict[str, Any]] = []
    for i, r in enumerate(replies):
        if request.tool is not None:
            # As OpenAI streams a call: id and name first, then the arguments in pieces.
            arguments = _arguments(r)
            third = max(1, len(arguments) // 3)
            choices.append(choice(i, {"role": "assistant", "content": None}, None))
            choices.append(
                choice(i, {"tool_calls": [{**_tool_call(request.tool, i, ""), "index": 0}]}, None)
            )
            choices.extend(
                choice(
                    i,
                    {
                        "tool_calls": [
                            {"index": 0, "function": {"arguments": arguments[k : k + third]}}
                        ]
                    },
                    None,
                )
                for k in range(0, len(arguments), third)
            )
            choices.append(choice(i, {}, "tool_calls"))
            continue
        choices.append(choice(i, {"role": "assistant", "content": "", "refusal": None}, None))
        choices.extend(choice(i, {"content": piece}, None) for piece in r.pieces)
        choices.append(choice(i, {}, r.finish_reason))
    return _stream("chatcmpl", "chat.completion.chunk", request, choices, created, billed)


def text_stream(
    request: validation.GenerationRequest,
    replies: list[tokens.Reply],
    *,
    created: int,
    billed: billing.Usage,
) -> list[bytes]:
    def choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}

    choices: list[dict[str, Any]] = []
    for i, r in enumerate(replies):
        choices.extend(choice(i, piece, None) for piece in r.pieces)
        choices.append(choice(i, "", r.finish_reason))
    return _stream("cmpl", "text_completion", request, choices, created, billed)


def embedding_list(request: validation.EmbeddingRequest, *, dimensions: int) -> bytes:
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": embeddings.encode(
                embeddings.vector(text, dimensions), request.encoding_format
            ),
        }
        for i, text in enumerate(request.inputs)
    ]
    tokens_used = {"prompt_tokens": request.prompt_tokens, "total_tokens": request.prompt_tokens}
    return orjson.dumps(
        {"object": "list", "data": data, "model": request.model, "usage": tokens_used}
    )


def model_list(models: tuple[str, ...]) -> bytes:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "mockllm"} for m in models]
    return orjson.dumps({"object": "list", "data": data})


def _completion(
    id_prefix: str,
    object_name: str,
    request: validation.GenerationRequest,
    choices: list[dict[str, Any]],
    created: int,
    billed: billing.Usage,
) -> bytes:
    return orjson.dumps(
        {
            "id": new_id(id_prefix),
            "object": object_name,
            "created": created,
            "model": request.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            "usage": billed.as_openai(),
        }
    )


def _stream(
    id_prefix: str,
    object_name: str,
    request: validation.GenerationRequest,
    choices: list[dict[str, Any]],
    created: int,
    billed: billing.Usage,
) -> list[bytes]:
    head = {
        "id": new_id(id_prefix),
        "object": object_name,
        "created": created,
        "model": request.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    # With include_usage, OpenAI puts "usage": null on every chunk before the usage chunk.
    tail = {"usage": None} if request.include_usage else {}
    events = [_event({**head, "choices": [c], **tail}) for c in choices]
    if request.include_usage:
        events.append(_event({**head, "choices": [], "usage": billed.as_openai()}))
    events.append(DONE_EVENT)
    return events


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
