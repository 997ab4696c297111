"""What a batch run will take, before it starts: records, prompt tokens, cost and duration.

`estimate` is pure: the caller (the job's driver) counts the input and renders the prompts of a
sample of it. Prompt tokens are counted with the model's own tokenizer where it is known (OpenAI
models, through bpe-openai, which ships tiktoken's vocabularies), and otherwise approximated at
four characters a token, OpenAI's rule of thumb for English. Output tokens and so the cost are an
upper bound: every reply at `max_tokens`. The duration assumes a latency per request.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

from tiers.runtime import pricing
from tiers.runtime.batch import progress
from tiers.runtime.modelcall.config import ModelCallConfig

# OpenAI's chat format spends a few tokens per message on role and separators, and a few more
# to prime the reply (the count the OpenAI cookbook gives).
TOKENS_PER_MESSAGE = 4
TOKENS_PER_CHAT = 3

Counter = Callable[[str], int]


def approximate_tokens(text: str) -> int:
    """About four characters a token."""
    return (len(text) + 3) // 4


@functools.cache
def tokenizer(model: str) -> tuple[Counter, bool]:
    """The token counter for `model` and whether it is exact (the model's own tokenizer)."""
    try:
        import bpe_openai
    except ImportError:  # pragma: no cover - a dependency; kept optional for slim images
        return approximate_tokens, False
    try:
        with warnings.catch_warnings():  # it loads its vocabularies with a deprecated call
            warnings.simplefilter("ignore", DeprecationWarning)
            encoding = bpe_openai.encoding_for_model(model)
            encoding.encode("")  # loads the vocabulary now, inside this block
    except (KeyError, ValueError, bpe_openai.UnsupportedModelError):
        return approximate_tokens, False

    def count(text: str) -> int:
        return len(encoding.encode(text))

    return count, True


def prompt_tokens(settings: ModelCallConfig, prompts: Sequence[str]) -> tuple[int, bool]:
    """The input tokens of `prompts` as the model counts them, and whether the count is exact."""
    count, exact = tokenizer(settings.model)
    total = sum(map(count, prompts))
    if settings.route == "chat":
        messages = 2 if settings.system else 1
        system = count(settings.system) if settings.system else 0
        total += len(prompts) * (messages * TOKENS_PER_MESSAGE + TOKENS_PER_CHAT + system)
    return total, exact


def estimate(
    settings: ModelCallConfig,
    sample: Sequence[str],
    *,
    records: int,
    parallelism: int,
    latency_ms: int,
) -> progress.Estimate:
    """Scales the sample's prompt tokens to `records`; `parallelism` is Spark's task slots."""
    tokens, exact = prompt_tokens(settings, sample)
    input_tokens = round(tokens * records / len(sample)) if sample else 0
    output_per_record = 0 if settings.route == "embeddings" else settings.max_tokens or 0
    output_tokens = output_per_record * records
    usage = pricing.Usage(prompt_tokens=input_tokens, completion_tokens=output_tokens)
    requests = math.ceil(records / settings.rows_per_request)
    waves = math.ceil(requests / (settings.max_in_flight * max(parallelism, 1)))
    return progress.Estimate(
        records=records,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=pricing.cost(usage, settings.price()),
        duration_seconds=math.ceil(waves * latency_ms / 1000),
        tokens_exact=exact,
    )


def render_table(found: progress.Estimate, settings: ModelCallConfig) -> str:
    """The estimate as a small table for a terminal."""
    how = (
        "counted with the model's tokenizer"
        if found.tokens_exact
        else ("approximated at 4 characters a token")
    )
    rows = [
        ("records", f"{found.records:,}", ""),
        ("input tokens", f"{found.input_tokens:,}", how),
        ("output tokens", f"<= {found.output_tokens:,}", "every reply at max_tokens"),
        ("cost", f"<= ${pricing.format_usd(found.cost_usd)}", f"model {settings.model}"),
        ("duration", f"~ {found.duration_seconds:,} s", "at the assumed latency per request"),
    ]
    width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    return "\n".join(
        f"{label:<{width}}  {value:>{value_width}}  {note}".rstrip() for label, value, note in rows
    )


def as_json(found: progress.Estimate) -> dict[str, object]:
    """The estimate as BatchJob's `status.estimate` spells it."""
    return {
        "records": found.records,
        "inputTokens": found.input_tokens,
        "outputTokens": found.output_tokens,
        "costUSD": pricing.format_usd(found.cost_usd),
        "durationSeconds": found.duration_seconds,
        "tokensExact": found.tokens_exact,
    }
