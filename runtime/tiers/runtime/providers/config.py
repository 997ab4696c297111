"""What every caller of a model configures the same way: a backend, retries, the circuit breaker
and prices.

These models are a contract: the operator renders them into the gateway's and the jobs' config
(`gateway.config.GatewayConfig`, `modelcall.config.ModelCallConfig`), and the data plane reads
them back. They hold no secret, only the names of the environment variables that do. Nothing here
loads the HTTP client, so the operator may import it.
"""

from __future__ import annotations

import decimal
import typing
from collections.abc import Mapping
from typing import Literal

import pydantic

from tiers.runtime import pricing

Provider = Literal["openai", "azure-openai", "openai-compatible"]
PROVIDERS: tuple[Provider, ...] = typing.get_args(Provider)
OPENAI_BASE_URL = "https://api.openai.com/v1"


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


class EntraConfig(_Config):
    """Azure OpenAI with a Microsoft Entra ID token instead of a key: the application signs in
    with its client secret (in the backend's `api_key_env`) or, without one, as the pod's
    workload identity (AZURE_FEDERATED_TOKEN_FILE)."""

    tenant_id: str
    client_id: str
    scope: str = COGNITIVE_SERVICES_SCOPE


class BackendConfig(_Config):
    name: str
    provider: Provider
    model: str
    """The upstream model name; "*" sends whatever name the caller asks for."""
    base_url: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    api_key_env: str | None = None
    """Environment variable that holds the upstream key (the operator maps a Secret into it);
    with `entra`, the application's client secret."""
    entra: EntraConfig | None = None
    priority: int = 0
    weight: int = 1
    timeout_ms: int = 30000
    """Per attempt, from sending the request to the last byte of the reply."""

    @property
    def url_base(self) -> str:
        return (self.base_url or OPENAI_BASE_URL).rstrip("/")


class RetryConfig(_Config):
    max_attempts: int = 3
    initial_backoff_ms: int = 100
    max_backoff_ms: int = 5000
    """The longest wait between attempts; a server asking (Retry-After) for more ends them."""


class CircuitBreakerConfig(_Config):
    failure_threshold: int = 5
    """Consecutive failures that open the circuit of a backend."""
    open_seconds: float = 10.0


class PriceConfig(_Config):
    input_per_m_tok_usd: decimal.Decimal
    output_per_m_tok_usd: decimal.Decimal
    cached_input_per_m_tok_usd: decimal.Decimal | None = None

    def to_price(self) -> pricing.Price:
        return pricing.Price(
            input=self.input_per_m_tok_usd,
            output=self.output_per_m_tok_usd,
            cached_input=self.cached_input_per_m_tok_usd,
        )


def price_overrides(prices: Mapping[str, PriceConfig]) -> dict[str, pricing.Price]:
    """A config's `prices` (by upstream model name) as the overrides `pricing.price_for` takes."""
    return {model: price.to_price() for model, price in prices.items()}


def backend_key_env(index: int) -> str:
    """The variable holding the key of the `index`th backend of a command line or a gateway."""
    return f"TIERS_BACKEND_{index}_API_KEY"


def parse_backend_flag(value: str, index: int) -> BackendConfig:
    """`provider=url` from the command line, e.g. openai-compatible=http://127.0.0.1:9001/v1.

    Flags list backends in fallback order; the upstream model is the one the caller asks for.
    """
    provider, _, url = value.partition("=")
    if provider not in PROVIDERS:
        raise ValueError(
            f"--backend {value!r}: provider must be openai, azure-openai or openai-compatible"
        )
    return BackendConfig(
        name=f"backend-{index}",
        provider=provider,
        model="*",
        priority=index,
        base_url=url or None,
        api_key_env=backend_key_env(index),
    )
