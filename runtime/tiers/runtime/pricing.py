"""What a model call costs: token usage times price per million tokens, in exact decimals.

Prices as OpenAI bills: prompt tokens served from the provider's prompt cache
(`prompt_tokens_details.cached_tokens`) at the cached-input price, and a reasoning model's hidden
reasoning tokens (`completion_tokens_details.reasoning_tokens`) as output: they are part of
`completion_tokens`, so they are billed there, once.

One price table for all three tiers. Defaults cover common OpenAI models; a RealtimeEndpoint's
`spec.pricing` (rendered into the runtime config) overrides them for its model.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Mapping
from typing import Any

MILLION = decimal.Decimal(1_000_000)
# Money leaves this module with 9 decimal places: enough for one cached token of a cheap model.
QUANTUM = decimal.Decimal("0.000000001")


@dataclasses.dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: decimal.Decimal
    output: decimal.Decimal
    cached_input: decimal.Decimal | None = None

    @classmethod
    def of(cls, input: str, output: str, cached_input: str | None = None) -> Price:
        return cls(
            input=decimal.Decimal(input),
            output=decimal.Decimal(output),
            cached_input=None if cached_input is None else decimal.Decimal(cached_input),
        )


@dataclasses.dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """The part of prompt_tokens served from the provider's prompt cache."""
    reasoning_tokens: int = 0
    """The part of completion_tokens a reasoning model spent thinking (billed as output)."""

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """The `usage` object of an OpenAI-style reply (or stream chunk); nothing where there is
        none, so a server that reports no usage costs nothing rather than failing the call."""
        if not isinstance(usage, dict):
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o": Price.of("2.50", "10.00", "1.25"),
    "gpt-4o-mini": Price.of("0.15", "0.60", "0.075"),
    "gpt-4.1": Price.of("2.00", "8.00", "0.50"),
    "gpt-4.1-mini": Price.of("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": Price.of("0.10", "0.40", "0.025"),
    "o3-mini": Price.of("1.10", "4.40", "0.55"),
    "text-embedding-3-small": Price.of("0.02", "0"),
    "text-embedding-3-large": Price.of("0.13", "0"),
}
ZERO = Price.of("0", "0")


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price:
    """The price of `model`: an override, else the default table (also for dated snapshots such
    as gpt-4o-mini-2024-07-18), else zero, so an unknown model never breaks a request."""
    table = {**DEFAULT_PRICES, **(overrides or {})}
    if model in table:
        return table[model]
    family = max((name for name in table if model.startswith(name + "-")), key=len, default=None)
    return table[family] if family is not None else ZERO


def cost(usage: Usage, price: Price) -> decimal.Decimal:
    """USD for one call. Cached prompt tokens are billed at the cached rate where one exists;
    reasoning tokens are inside completion_tokens, billed at the output rate with the rest."""
    cached_rate = price.input if price.cached_input is None else price.cached_input
    fresh_prompt = max(usage.prompt_tokens - usage.cached_tokens, 0)
    total = (
        fresh_prompt * price.input
        + usage.cached_tokens * cached_rate
        + usage.completion_tokens * price.output
    ) / MILLION
    return total.quantize(QUANTUM)


def format_usd(amount: decimal.Decimal) -> str:
    """A decimal string without exponent or trailing zeros beyond 6 places: "0.000150"."""
    text = format(amount.quantize(QUANTUM).normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{(fraction + '000000')[: max(6, len(fraction))]}"
