"""RealtimeEndpoint: an OpenAI-compatible gateway with cache, auth, rate limits and fallbacks."""

from __future__ import annotations

from typing import Literal

import pydantic

from tiers.api import batch, certificates, common, exposure


class Autoscaling(common.Model):
    """A HorizontalPodAutoscaler for the gateway pods."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.maxReplicas >= self.minReplicas",
                "autoscaling.maxReplicas must be greater than or equal to minReplicas",
                field_path=".maxReplicas",
            )
        )
    )

    min_replicas: int = pydantic.Field(default=2, ge=1, le=1000)
    max_replicas: int = pydantic.Field(ge=1, le=1000)
    target_cpu_utilization_percent: int = pydantic.Field(default=70, ge=10, le=100)


class SemanticCache(common.Model):
    """Answers single-turn prompts whose embedding is close to a cached one."""

    enabled: bool = False
    similarity_percent: int = pydantic.Field(
        default=95, ge=50, le=100, description="Cosine similarity threshold, in percent."
    )
    embedding_model: str = pydantic.Field(
        default="text-embedding-3-small",
        min_length=1,
        max_length=128,
        pattern=common.TRIMMED_PATTERN,
    )
    max_entries: int = pydantic.Field(
        default=256,
        ge=1,
        le=100_000,
        description="Prompts kept per scope (tenant, model, sampling parameters); oldest go first.",
    )


class Cache(common.Model):
    """Exact-match response cache in Redis, with an in-process L1 in front."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.enabled || !has(self.semantic) || !self.semantic.enabled",
                "cache.semantic.enabled needs cache.enabled: a semantic hit serves an answer"
                " from the exact cache",
                reason="FieldValueInvalid",
                field_path=".semantic.enabled",
            )
        )
    )

    enabled: bool = True
    ttl_seconds: int = pydantic.Field(default=3600, ge=1, le=2592000)
    redis_url_secret_ref: common.SecretKeyRef | None = pydantic.Field(
        default=None,
        alias="redisURLSecretRef",
        description="Use an existing Redis; without it the operator runs one for this endpoint.",
    )
    semantic: SemanticCache | None = None


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]

LOOPBACK_HTTP = r"^http://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]+)?(/.*)?$"


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["RS256", "ES256"]


class JWT(common.Model):
    """Callers with a JWT from an OpenID Connect provider (Entra ID, Okta, Keycloak, Dex...),
    sent as `Authorization: Bearer <token>`. The gateway checks its signature against the
    provider's JWKS (re-fetched every jwksRefreshSeconds, and at once on an unknown key id, so
    rotated keys are picked up), its iss, aud, exp and nbf; the claim tenantClaim names the
    caller's tenant for rate limits, cache scope and budget, as a key does."""

    issuer: str = pydantic.Field(
        min_length=1,
        max_length=1024,
        pattern=common.TRIMMED_PATTERN,
        description="The exact iss of accepted tokens; Entra ID (v2): "
        "https://login.microsoftonline.com/<tenant id>/v2.0.",
    )
    audience: str = pydantic.Field(
        min_length=1,
        max_length=1024,
        pattern=common.TRIMMED_PATTERN,
        description="The aud accepted tokens carry (Entra ID: the application's client id or "
        "its Application ID URI, api://...).",
    )
    jwks_url: str = pydantic.Field(
        alias="jwksURL",
        min_length=1,
        max_length=2048,
        description="Where the provider publishes its signing keys (Entra ID: "
        "https://login.microsoftonline.com/<tenant id>/discovery/v2.0/keys). https only; "
        "http only to localhost, 127.0.0.1 or [::1] (a sidecar or local testing): keys fetched "
        "in clear elsewhere could be swapped on the way.",
        json_schema_extra=common.validations(
            common.cel(
                f"self.startsWith('https://') || self.matches('{LOOPBACK_HTTP}')",
                "auth.jwt.jwksURL must be an https:// URL (http:// only to localhost, "
                "127.0.0.1 or [::1]): signing keys fetched in clear could be swapped",
                reason="FieldValueInvalid",
            )
        ),
    )
    tenant_claim: str = pydantic.Field(
        default="sub",
        min_length=1,
        max_length=256,
        pattern=common.TRIMMED_PATTERN,
        description="The claim whose value names the caller's tenant (Entra ID: tid for the "
        "directory, azp for the calling application, oid for the user).",
    )
    algorithms: list[JwtAlgorithm] = pydantic.Field(
        default_factory=_default_algorithms,
        min_length=1,
        max_length=10,
        description="Accepted signature algorithms: public-key ones only (never none, never "
        "HS*, whose secret would be the public JWKS).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    clock_skew_seconds: int = pydantic.Field(
        default=60, ge=0, le=600, description="Leeway on exp and nbf."
    )
    jwks_refresh_seconds: int = pydantic.Field(
        default=300,
        ge=10,
        le=86400,
        description="How often the JWKS is fetched again: a key the provider removed is "
        "refused after this long at most.",
    )


class Auth(common.Model):
    """Who may call: API keys, JWTs from an identity provider, or both (either one serves)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.apiKeysSecretRef) || has(self.jwt)",
                "auth needs apiKeysSecretRef or jwt (or both); leave auth out for no auth",
                reason="FieldValueRequired",
            )
        )
    )

    api_keys_secret_ref: common.ObjectRef | None = pydantic.Field(
        default=None,
        alias="apiKeysSecretRef",
        description="A Secret whose values are the accepted keys; the gateway compares hashes "
        "and never logs a key.",
    )
    jwt: JWT | None = None


class RateLimits(common.Model):
    """Per-key limits, shared by all gateway replicas through Redis."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.requestsPerMinute) || has(self.tokensPerMinute)",
                "rateLimits needs requestsPerMinute or tokensPerMinute (or leave it out)",
                reason="FieldValueRequired",
            )
        )
    )

    requests_per_minute: int | None = pydantic.Field(default=None, ge=1, le=100_000_000)
    tokens_per_minute: int | None = pydantic.Field(default=None, ge=1, le=10_000_000_000)


class Retries(common.Model):
    """Retries on 429/5xx with jittered backoff; Retry-After is honoured."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.maxBackoffMs >= self.initialBackoffMs",
                "retries.maxBackoffMs must be greater than or equal to initialBackoffMs",
                reason="FieldValueInvalid",
                field_path=".maxBackoffMs",
            )
        )
    )

    max_attempts: int = pydantic.Field(default=3, ge=1, le=10)
    initial_backoff_ms: int = pydantic.Field(default=100, ge=1, le=60000)
    max_backoff_ms: int = pydantic.Field(default=5000, ge=1, le=600000)


class Budget(common.Model):
    """A monthly spending cap; past it the endpoint answers 429 insufficient_quota."""

    monthly_usd: common.DecimalUSD = pydantic.Field(
        alias="monthlyUSD",
        json_schema_extra=common.validations(common.POSITIVE_AMOUNT_RULE),
    )


VOLUME_URI_PATTERN = r"^dbfs:/Volumes/[^/\s]+/[^/\s]+/[^/\s]+(/[^/\s]+)*/?$"
MAX_VOLUME_FILE_MB = 5120
"""The Files API takes a file of up to 5 GiB in one request."""


class BatchStorage(common.Model):
    """Where the Batch API keeps uploaded files and each batch's output and error files."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.claimName) != has(self.uri)",
                "exactly one of batch.storage.claimName (a PersistentVolumeClaim, for engine "
                "spark) or batch.storage.uri (a Unity Catalog volume, for engine databricks) "
                "is required",
                reason="FieldValueInvalid",
            )
        )
    )

    claim_name: common.ResourceName | None = pydantic.Field(
        default=None,
        description="A PersistentVolumeClaim in this namespace, mounted by the gateway pods and "
        "by every batch's run pods (ReadWriteMany where they may share no node); engine spark.",
    )
    uri: str | None = pydantic.Field(
        default=None,
        max_length=1024,
        pattern=VOLUME_URI_PATTERN,
        description="A folder in a Unity Catalog volume, dbfs:/Volumes/<catalog>/<schema>/"
        "<volume>/<folder>; engine databricks. The gateway writes and reads the files through "
        "the workspace's Files API (at batch.databricks.host, or the URL the operator reads "
        "from Azure for batch.databricks.workspaceResourceId, with tokenSecretRef's token); "
        "each batch's Databricks run reads and writes them at this URI.",
    )


class BatchAPI(common.Model):
    """OpenAI's Batch API on this endpoint: POST /v1/files (purpose batch) and /v1/batches.
    Each batch becomes a BatchJob (`engine`) owned by the endpoint, labelled with its id,
    whose requests call this endpoint (auth, cache, limits and budget as any call)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.engine == 'databricks' ? has(self.storage.uri) : has(self.storage.claimName)",
                "batch.storage: engine spark keeps the files on storage.claimName (a "
                "PersistentVolumeClaim); engine databricks in storage.uri (a Unity Catalog "
                "volume, dbfs:/Volumes/<catalog>/<schema>/<volume>/<folder>)",
                reason="FieldValueInvalid",
            ),
            common.cel(
                "(self.engine == 'databricks') == has(self.databricks)",
                "batch.databricks is required with batch.engine databricks, and allowed with it "
                "only",
                reason="FieldValueInvalid",
            ),
            common.cel(
                f"!has(self.storage.uri) || self.maxFileMB <= {MAX_VOLUME_FILE_MB}",
                f"batch.maxFileMB must be at most {MAX_VOLUME_FILE_MB} with storage.uri (the "
                "Files API takes a file of up to 5 GiB in one request)",
                reason="FieldValueInvalid",
            ),
        )
    )

    enabled: bool = True
    engine: batch.BatchEngine = pydantic.Field(
        default="spark",
        description="What runs each batch: spark (on this cluster, files on storage.claimName) "
        "or databricks (a Databricks run, files in storage.uri).",
    )
    storage: BatchStorage
    spark: batch.Spark = pydantic.Field(
        default_factory=batch.Spark, description="How each batch's run uses Spark (engine spark)."
    )
    databricks: batch.Databricks | None = pydantic.Field(
        default=None,
        description="Where each batch runs with engine databricks: a BatchJob's "
        "spec.databricks (the workspace by host or by Azure workspaceResourceId), given to "
        "every batch's BatchJob as it is.",
    )
    max_file_mb: int = pydantic.Field(
        default=200,
        ge=1,
        le=10240,
        alias="maxFileMB",
        description="The largest file POST /v1/files takes, in MiB (OpenAI's limit is 200); "
        "uploads are streamed to the volume (with storage.uri, first to a scratch volume of "
        "the gateway pod's own), never held in memory.",
    )
    backoff_limit: int = pydantic.Field(
        default=3,
        ge=0,
        le=100,
        description="Retries of a failed batch run (BatchJob backoffLimit).",
    )


class Audit(common.Model):
    """An audit trail: one JSON line per model call on the gateway's stdout (tenant, route,
    model, status, cache outcome, tokens, cost, latency; never a prompt, an answer or a key)."""

    sample_percent: int = pydantic.Field(
        default=100,
        ge=1,
        le=100,
        description="The share of calls logged, drawn at random per call (100: every call).",
    )


class Objectives(common.Model):
    """What the endpoint should keep: the chart's alerts (PrometheusRule) fire when it does not."""

    p95_ms: int = pydantic.Field(
        alias="p95Ms",
        ge=1,
        le=600000,
        description=(
            "95th-percentile latency in milliseconds; alert TiersEndpointLatencyAboveObjective"
            " fires when status.latency.p95Ms stays above it for 10 minutes."
        ),
    )


class RealtimeEndpointSpec(common.Model):
    model: str = pydantic.Field(
        min_length=1,
        max_length=128,
        pattern=common.TRIMMED_PATTERN,
        description="The model name clients ask for; requests for other names get 404.",
    )
    backends: list[common.Backend] = pydantic.Field(
        min_length=1,
        max_length=8,
        description="Upstream servers, in fallback order.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    replicas: int = pydantic.Field(default=2, ge=1, le=1000, description="Gateway pods.")
    autoscaling: Autoscaling | None = None
    cache: Cache = pydantic.Field(default_factory=Cache)
    auth: Auth | None = None
    rate_limits: RateLimits | None = None
    retries: Retries = pydantic.Field(default_factory=Retries)
    pricing: common.Pricing | None = pydantic.Field(
        default=None, description="Overrides the built-in price table for this model."
    )
    budget: Budget | None = None
    batch: BatchAPI | None = None
    objectives: Objectives | None = None
    audit: Audit | None = pydantic.Field(
        default=None, description="Log model calls for an audit trail; without it, none are."
    )
    telemetry: common.Telemetry | None = pydantic.Field(
        default=None,
        description="Send a span per model call (auth, limits, cache, each upstream attempt)"
        " to an OpenTelemetry collector; without it, none are made.",
    )
    suspend: bool = pydantic.Field(default=False, description="Scale the gateway to zero.")
    expose: exposure.Expose | None = pydantic.Field(
        default=None,
        description="Reach the gateway from outside the cluster through an Ingress or a"
        " Gateway API HTTPRoute that the operator makes and owns.",
    )
    tls: certificates.TLS | None = pydantic.Field(
        default=None,
        description="Serve HTTPS inside the cluster (the Service's port speaks TLS 1.2+ only);"
        " clients that the operator runs verify it. Without it, plain HTTP.",
    )


class Traffic(common.Windowed):
    requests: int = pydantic.Field(ge=0)
    requests_per_second: int = pydantic.Field(ge=0)
    errors: int = pydantic.Field(ge=0)


class CacheStatus(common.Windowed):
    hit_ratio: str = pydantic.Field(
        pattern=r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$",
        description='Hits over lookups, e.g. "0.8312".',
    )


class RealtimeCost(common.CostStatus):
    per_request_usd: common.DecimalUSD = pydantic.Field(alias="perRequestUSD")


class BudgetStatus(common.Model):
    """The month's spend against `spec.budget.monthlyUSD`, as all gateway replicas counted it.

    The window is the UTC calendar month in `month`; there is no `observedAt`, so an endpoint
    without traffic keeps an unchanged status instead of being rewritten on every recheck.
    """

    month: str = pydantic.Field(
        pattern=r"^[0-9]{4}-[0-9]{2}$", max_length=7, description='UTC month, e.g. "2026-11".'
    )
    month_usd: common.DecimalUSD = pydantic.Field(
        alias="monthUSD", description="Spent in `month`, all gateway replicas together."
    )
    limit_usd: common.DecimalUSD = pydantic.Field(
        alias="limitUSD", description="spec.budget.monthlyUSD."
    )
    remaining_usd: common.DecimalUSD = pydantic.Field(
        alias="remainingUSD", description="What is left of the limit this month; never negative."
    )


class RealtimeEndpointStatus(common.Status):
    url: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        description="The OpenAI base URL clients call: outside the cluster at spec.expose's host"
        " (https with its Ingress's TLS or through an HTTPRoute) when exposed at one host, else"
        " the in-cluster one (address.url).",
    )
    address: common.Address | None = pydantic.Field(
        default=None,
        description="The gateway's in-cluster URL, whether or not it is exposed, and with"
        " spec.tls the CA it is verified with (Knative's Addressable shape).",
    )
    ready_replicas: int | None = pydantic.Field(default=None, ge=0)
    traffic: Traffic | None = None
    cache: CacheStatus | None = None
    cost: RealtimeCost | None = None
    budget: BudgetStatus | None = pydantic.Field(
        default=None,
        description="This UTC month's spend against spec.budget.monthlyUSD; only with a budget.",
    )
