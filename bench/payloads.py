"""The requests every load generator sends: one chat completion, short prompt, short reply.

`CHAT_TEMPLATE` has one `%s` slot: the same text in it gives the same request (a cache hit after
the first), a counter in it gives a distinct request each time (a cache miss). The wrk scripts
fill the slot in Lua, the paced client in Python.
"""

from __future__ import annotations

CHAT_PATH = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
CHAT_TEMPLATE = (
    '{"model":"' + MODEL + '","max_tokens":16,'
    '"messages":[{"role":"user","content":"Say hello to request %s."}]}'
)


def chat_body(variant: str) -> bytes:
    return (CHAT_TEMPLATE % variant).encode()


def headers(api_key: str | None) -> dict[str, str]:
    result = {"Content-Type": "application/json"}
    if api_key is not None:
        result["Authorization"] = f"Bearer {api_key}"
    return result
