"""The names OpenTelemetry's semantic conventions for generative AI give to what Tiers calls:
each route's `gen_ai.operation.name` and each provider's `gen_ai.provider.name`, which the
gateway's, the stream job's and the batch job's spans share."""

from __future__ import annotations

from collections.abc import Mapping

from tiers.runtime.providers import config, routes

OPERATIONS: Mapping[routes.Route, str] = {
    "chat": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
"""gen_ai.operation.name of each route."""
PROVIDERS: Mapping[config.Provider, str] = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "openai-compatible": "openai",
}
"""gen_ai.provider.name of each provider: an OpenAI-compatible server speaks OpenAI's API."""
