"""What the mock bills for a reply, in the shape OpenAI reports it, and the bill so far.

OpenAI serves a prompt's prefix from its prompt cache once prompts reach 1,024 tokens, in steps
of 128 tokens, and reports that part as `prompt_tokens_details.cached_tokens`; a reasoning model
counts its hidden reasoning tokens in `completion_tokens` and reports them again as
`completion_tokens_details.reasoning_tokens`. With `MockConfig.prompt_cache` and
`reasoning_tokens` the mock does both, so tests can check what tiers charges against what the
provider bills: `/_mock/stats` carries the bill per model.
"""

import collections
import dataclasses
from typing import Any

MIN_CACHED_TOKENS = 1024
CACHE_STEP_TOKENS = 128
_CHARS_PER_TOKEN = 4  # as `tokens.estimate` counts
_CACHE_CAPACITY = 100_000
"""Prefixes remembered; all are forgotten at once past this (a mock needs no eviction order)."""


@dataclasses.dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def as_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
            },
        }


class PromptCache:
    """The prefixes of the prompts seen so far, at each 128-token step from 1,024 tokens."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def cached_tokens(self, text: str, prompt_tokens: int) -> int:
        """The tokens of `text` an earlier prompt's prefix covers; the prefixes are remembered."""
        steps = range(MIN_CACHED_TOKENS, prompt_tokens + 1, CACHE_STEP_TOKENS)
        prefixes = [hash(text[: step * _CHARS_PER_TOKEN]) for step in steps]
        cached = max(
            (step for step, prefix in zip(steps, prefixes, strict=True) if prefix in self._seen),
            default=0,
        )
        if len(self._seen) > _CACHE_CAPACITY:
            self._seen.clear()
        self._seen.update(prefixes)
        return cached


class Bill:
    """Tokens billed per model: what a provider's usage page would show."""

    def __init__(self) -> None:
        self._tokens: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    def add(self, model: str, usage: Usage) -> None:
        self._tokens[model].update(
            {name: value for name, value in dataclasses.asdict(usage).items() if value}
        )

    def snapshot(self) -> dict[str, dict[str, int]]:
        fields = [field.name for field in dataclasses.fields(Usage)]
        return {
            model: {name: counts[name] for name in fields}
            for model, counts in sorted(self._tokens.items())
        }
