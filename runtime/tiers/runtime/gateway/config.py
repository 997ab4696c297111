"""The gateway's configuration: what the operator renders into a ConfigMap, or flags build.

This is the contract between `tiers.operator` (which writes it) and the gateway (which reads it);
it holds no secrets, only the names of environment variables and files that do. What the gateway
shares with every other caller of a model (backends, retries, the breaker, prices) is configured
as `tiers.runtime.providers` says.
"""

from __future__ import annotations

import decimal
import json
import pathlib
from typing import Literal

import pydantic
import yaml

from tiers.runtime import pricing, providers
from tiers.runtime.tracing import config as tracing_config


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class SemanticCacheConfig(_Config):
    """Answers a single-turn prompt with the cached response of a close enough earlier prompt.

    Needs the exact-match cache (its entries hold the responses) and Redis (which holds the
    vectors, so replicas share them); see `semantic`.
    """

    enabled: bool = False
    threshold: float = pydantic.Field(default=0.95, ge=0.0, le=1.0)
    """The least cosine similarity between two prompts' embeddings that counts as the same."""
    embedding_model: str = "text-embedding-3-small"
    """Asked of the endpoint's own backends; on azure-openai, the name of the deployment."""
    max_entries: int = pydantic.Field(default=256, ge=1, le=100_000)
    """Prompts kept per scope (tenant, route, model, sampling parameters); the oldest go first."""


class CacheConfig(_Config):
    enabled: bool = True
    ttl_seconds: int = 3600
    l1_max_entries: int = 10000
    l1_ttl_seconds: int = 60
    """The in-process copy lives shorter than Redis's, so replicas converge quickly."""
    semantic: SemanticCacheConfig | None = None


class RateLimitConfig(_Config):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class ServerLimits(_Config):
    """What one client may hold of a gateway replica: time, header bytes, connections; and how
    much of a backend's answer the gateway buffers. Past a limit the client gets a 4xx (or a
    503 when the replica is full), never a hang."""

    request_timeout_s: float = pydantic.Field(default=30.0, gt=0, le=3600)
    """From a request's first byte (or a new connection) to its whole body: slow clients go."""
    max_header_bytes: int = pydantic.Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    max_headers: int = pydantic.Field(default=100, ge=8, le=1000)
    max_connections: int = pydantic.Field(default=4096, ge=1, le=1_000_000)
    """Open client connections per replica; one more gets 503 and is closed."""
    max_upstream_body_bytes: int = pydantic.Field(default=64 * 1024 * 1024, ge=1024)
    """A backend's whole (non-streamed) answer; past it the call fails as a backend error."""
    max_event_bytes: int = pydantic.Field(default=1024 * 1024, ge=1024)
    """One server-sent event of a backend's stream; past it the stream is cut."""


class VolumeConfig(_Config):
    """A Unity Catalog volume folder that holds the Batch API's files (`spec.batch.storage.uri`
    with engine databricks), read and written through the workspace's Files API."""

    host: str = pydantic.Field(pattern=r"^https?://")
    """The workspace URL."""
    token_env: str
    """The variable that holds the workspace token (from a Secret)."""
    root: str = pydantic.Field(pattern=r"^/Volumes/[^/]+/[^/]+/[^/]+(/[^/]+)*$")
    """The folder, as the Files API names it: /Volumes/<catalog>/<schema>/<volume>/<folder>."""


class BatchConfig(_Config):
    """OpenAI's Batch API (`batches`): where its files go and the BatchJob each batch becomes.

    The gateway creates that BatchJob in `namespace`, owned by the endpoint (`endpoint_uid`).
    With `claim_name` (engine spark) its input and output are under `storage_dir`, which the
    BatchJob's pods mount from the same claim; with `volume` (engine databricks) they are in that
    volume, and `storage_dir` is the gateway's scratch folder for uploads on their way there."""

    namespace: str
    endpoint_name: str
    endpoint_uid: str
    storage_dir: pathlib.Path
    """Where the claim is mounted: `files/` holds uploads, `batches/` each batch's results."""
    claim_name: str | None = None
    volume: VolumeConfig | None = None
    engine: Literal["spark", "databricks"] = "spark"
    spark: dict[str, object] = pydantic.Field(default_factory=dict)
    """The BatchJob's `spec.spark`, as the API writes it."""
    databricks: dict[str, object] | None = None
    """The BatchJob's `spec.databricks` (engine databricks), as the API writes it."""
    backoff_limit: int = pydantic.Field(default=3, ge=0, le=100)
    max_file_bytes: int = pydantic.Field(default=200 * 1024 * 1024, ge=1024)
    completion_window_s: int = pydantic.Field(default=24 * 3600, ge=60)
    """OpenAI's only window, "24h": a batch still running after it expires."""

    @property
    def upload_scratch_bytes(self) -> int:
        return upload_scratch_bytes(self.max_file_bytes)


UPLOAD_SLACK_BYTES = 64 * 1024 * 1024


def upload_scratch_bytes(max_file_bytes: int) -> int:
    """What the uploads in progress on one gateway pod may spool together: one file of the
    largest size and room beside it. The gateway takes an upload only while it fits
    (`batch_files`); the operator sizes the pod's scratch volume to it, so that uploads never
    fill it (the kubelet would evict the pod)."""
    return max_file_bytes + UPLOAD_SLACK_BYTES


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
"""The signatures a JWT caller's token may carry: public-key ones only (never `none`, never an
HMAC, whose secret would be the public key anyone can fetch)."""


JWKS_MIN_REFETCH_S = 30.0


class JwtConfig(_Config):
    """spec.auth.jwt: callers that present a JWT from an OIDC provider (Entra ID or any other)
    instead of an API key; its `tenant_claim` names the tenant, as a key's digest does (`jwts`)."""

    issuer: str = pydantic.Field(min_length=1)
    audience: str = pydantic.Field(min_length=1)
    jwks_url: str = pydantic.Field(pattern=r"^https?://")
    tenant_claim: str = pydantic.Field(default="sub", min_length=1)
    algorithms: tuple[JwtAlgorithm, ...] = pydantic.Field(default=("RS256", "ES256"), min_length=1)
    clock_skew_s: int = pydantic.Field(default=60, ge=0, le=600)
    """Leeway on `exp` and `nbf` for clocks that disagree."""
    jwks_refresh_s: float = pydantic.Field(default=300.0, gt=0)
    """How often the signing keys are fetched again: a key the provider removed is refused after
    this long at most."""
    jwks_min_refetch_s: float = pydantic.Field(default=JWKS_MIN_REFETCH_S, ge=0)
    """A token signed by a key the gateway does not hold (a rotation) fetches the keys again,
    at most once per this long, so that tokens with made-up key ids cannot flood the provider."""
    jwks_timeout_s: float = pydantic.Field(default=5.0, gt=0, le=60)


class GatewayConfig(_Config):
    endpoint: str = "local/gateway"
    """namespace/name of the RealtimeEndpoint: the key of its stats and cache entries."""
    model: str | None = None
    """The model name clients ask for; None serves any name and passes it upstream."""
    backends: tuple[providers.BackendConfig, ...] = pydantic.Field(min_length=1)
    redis_url: str | None = None
    redis_password_env: str | None = None
    """The variable that holds Redis's password (from a Secret); the URL carries none."""
    api_keys_dir: pathlib.Path | None = None
    """A mounted Secret: every file's content is an accepted key. None (and no `jwt`): no auth."""
    jwt: JwtConfig | None = None
    """spec.auth.jwt: JWT callers beside the keys; with it, a caller with neither gets 401."""
    cache: CacheConfig = CacheConfig()
    rate_limits: RateLimitConfig = RateLimitConfig()
    retries: providers.RetryConfig = providers.RetryConfig()
    circuit_breaker: providers.CircuitBreakerConfig = providers.CircuitBreakerConfig()
    prices: dict[str, providers.PriceConfig] = pydantic.Field(default_factory=dict)
    """Overrides of the default price table, by upstream model name."""
    max_body_bytes: int = 4 * 1024 * 1024
    limits: ServerLimits = ServerLimits()
    budget_usd: decimal.Decimal | None = pydantic.Field(default=None, ge=0)
    """spec.budget.monthlyUSD: past this spend in a calendar month (UTC) calls get 429
    insufficient_quota; None: no budget. See `budget` for how replicas share the spend."""
    audit_sample_ratio: float = pydantic.Field(default=0.0, ge=0.0, le=1.0)
    """spec.audit: the share of model calls logged as one JSON line each (`audit`); 0: none."""
    batch: BatchConfig | None = None
    """spec.batch: serve /v1/files and /v1/batches; None: those paths are 404."""
    tracing: tracing_config.TracingConfig | None = None
    """spec.telemetry: a span per model call, exported to an OTLP collector; None: no spans."""

    def price_overrides(self) -> dict[str, pricing.Price]:
        return providers.price_overrides(self.prices)


def load(path: pathlib.Path) -> GatewayConfig:
    """Reads a config file (YAML or JSON)."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return GatewayConfig.model_validate(data)
