"""What a model client calls and how: target, model, prompt template, limits, retries, prices.

The stream and batch tiers build one `ModelCallConfig` from their resource's spec and hand it
(as JSON, through Spark's closure) to `blocking.score_batch` in each worker. The target is either
a RealtimeEndpoint's OpenAI-compatible URL or a backend, as `tiers.runtime.providers` describes
one. Like the providers' config it loads no client: the operator renders it.
"""

from __future__ import annotations

import pathlib
from typing import Self

import pydantic

from tiers.runtime import pricing, providers
from tiers.runtime.modelcall import prompts
from tiers.runtime.providers import routes


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class EndpointTarget(_Config):
    """A Tiers gateway (or any OpenAI-compatible server), e.g. http://chat.ns.svc:8080/v1."""

    url: str
    api_key_env: str | None = None
    """Environment variable that holds the key, sent as `Authorization: Bearer`."""
    ca_file: pathlib.Path | None = None
    """The CA an https `url` is verified against (the gateway's, as the operator publishes it);
    without it, or while the file is absent, the system's trust store."""

    def as_backend(self) -> providers.BackendConfig:
        return providers.BackendConfig(
            name="endpoint",
            provider="openai-compatible",
            model="*",
            base_url=self.url,
            api_key_env=self.api_key_env,
        )


Target = EndpointTarget | providers.BackendConfig


class ModelCallConfig(_Config):
    target: Target
    model: str = pydantic.Field(min_length=1)
    """The upstream model name: sent in each request and used to price it."""
    prompt: str = pydantic.Field(min_length=1)
    """A `str.format` template whose `{field}`s come from each row, e.g. "Summarise: {text}"."""
    system: str | None = None
    """A fixed system message for the chat route."""
    route: routes.Route = "chat"
    rows_per_request: int = pydantic.Field(default=1, ge=1, le=2048)
    """Rows sent in one request: completions take a list of prompts and embeddings a list of
    inputs, so a batch of N rows costs N / rows_per_request round trips. Chat takes one
    conversation per request, so it stays at 1."""
    max_tokens: int | None = pydantic.Field(default=256, ge=1)
    """The reply's token limit (chat and completions); None leaves it to the server."""
    max_in_flight: int = pydantic.Field(default=64, ge=1, le=4096)
    """Requests one client has open at once (per process, shared by all its callers)."""
    max_attempts: int = pydantic.Field(default=3, ge=1, le=20)
    initial_backoff_ms: int = pydantic.Field(default=100, ge=0)
    max_backoff_ms: int = pydantic.Field(default=5000, ge=0)
    """A server that asks (Retry-After) to wait longer than this ends the row's retries."""
    timeout_ms: int = pydantic.Field(default=30000, ge=1)
    """Per attempt, from sending the request to the last byte of the reply."""
    prices: dict[str, providers.PriceConfig] = pydantic.Field(default_factory=dict)
    """Overrides of the default price table, by upstream model name."""

    @pydantic.field_validator("prompt")
    @classmethod
    def _prompt_is_a_template(cls, value: str) -> str:
        prompts.check(value)
        return value

    @pydantic.model_validator(mode="after")
    def _target_matches(self) -> Self:
        if self.route == "chat" and self.rows_per_request != 1:
            raise ValueError(
                f"rows_per_request is {self.rows_per_request} but route is chat, which takes "
                "one conversation per request: use route completions or embeddings, or 1"
            )
        target = self.target
        if isinstance(target, EndpointTarget):
            return self
        if target.model not in ("*", self.model):
            raise ValueError(
                f"target.model is {target.model!r} but model is {self.model!r}: "
                "set target.model to '*' or to the same name"
            )
        if target.provider == "azure-openai" and not (target.deployment and target.api_version):
            raise ValueError(
                "an azure-openai target needs target.deployment and target.api_version"
            )
        return self

    @property
    def backend(self) -> providers.BackendConfig:
        """The target as a backend, whose attempts time out after this config's `timeout_ms`."""
        target = self.target
        backend = target.as_backend() if isinstance(target, EndpointTarget) else target
        return backend.model_copy(update={"timeout_ms": self.timeout_ms})

    @property
    def retry_policy(self) -> providers.RetryConfig:
        return providers.RetryConfig(
            max_attempts=self.max_attempts,
            initial_backoff_ms=self.initial_backoff_ms,
            max_backoff_ms=self.max_backoff_ms,
        )

    def price(self) -> pricing.Price:
        return pricing.price_for(self.model, providers.price_overrides(self.prices))
