"""Cheap token arithmetic: prompt token estimates and the deterministic reply.

The reply echoes the prompt's words, one word per completion token, so equal requests get equal
replies (what cache tests compare) and `max_tokens` truncates at a predictable place.
"""

import dataclasses

# OpenAI's chat format spends a few tokens per message on role and separators.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_CHAT = 3
_EMPTY_REPLY = ("OK",)


@dataclasses.dataclass(frozen=True)
class Reply:
    """One choice's text as the pieces a stream sends, and why it ended."""

    pieces: tuple[str, ...]
    finish_reason: str

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return len(self.pieces)


def estimate(text: str) -> int:
    """About four characters a token, the rule of thumb OpenAI gives for English."""
    return (len(text) + 3) // 4


def estimate_chat(contents: list[str]) -> int:
    return sum(estimate(c) + _TOKENS_PER_MESSAGE for c in contents) + _TOKENS_PER_CHAT


def reply_to(source: str, *, limit: int) -> Reply:
    """The first `limit` words of `source`, each after the first with its leading space."""
    words = source.split() or list(_EMPTY_REPLY)
    kept = words[:limit]
    pieces = (kept[0], *(" " + w for w in kept[1:]))
    return Reply(pieces=pieces, finish_reason="length" if len(words) > limit else "stop")
