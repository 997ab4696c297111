"""Types shared by the three kinds: references, money, conditions and status blocks.

Every model here is part of the CRD contract: `tiers.api.crdgen` turns them into the OpenAPI
schemas in `crds/`, so a field's constraints, description and CEL rules live beside it.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic
import pydantic.alias_generators

# Money is a non-negative decimal string ("0.000150"): never a float, never negative.
DECIMAL_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,9})?$"
# DNS-1123 label: what Kubernetes accepts as the name of a Secret, Service or child object.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Kafka topic names: letters, digits, '.', '_' and '-'.
TOPIC_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"
# Memory for a Spark process, in Kubernetes units: at least 1Mi.
MEMORY_PATTERN = r"^[1-9][0-9]*(Mi|Gi)$"
# A container image reference: not blank, no spaces.
IMAGE_PATTERN = r"^[A-Za-z0-9]\S*$"
# A name given as free text (a model, a deployment, a field): not blank, no surrounding spaces.
TRIMMED_PATTERN = r"^\S(.*\S)?$"
# An http(s) URL with a host: no `http:///path`, and no user:password@ (it would land in a
# ConfigMap; credentials go in Secrets).
HTTP_URL_PATTERN = r"^https?://[^/\s?#@]+(/\S*)?$"
# An OpenAI API path the client appends itself: a base URL that already ends in one is a mistake.
API_PATH_RULE = (
    r"!self.matches('/(chat/completions|completions|embeddings|responses|models|batches|files)/*$')"
)
# A prompt template: text, `{{` and `}}` for literal braces, and `{field}` placeholders (a field
# name, then optional .attribute or [key] parts, a !conversion and a :format without braces).
TEMPLATE_RULE = (
    r"self.matches('^([^{}]|[{][{]|[}][}]|[{][A-Za-z_][A-Za-z0-9_]*"
    r"([.][A-Za-z_][A-Za-z0-9_]*|\\[[^\\]{}]+\\])*(![rsa])?(:[^{}]*)?[}])*$')"
)
# ... with at least one placeholder (a `{` that opens a field, not one of a `{{` escape).
PLACEHOLDER_RULE = r"self.matches('(^|[^{])([{][{])*[{][A-Za-z_]')"


def cel(
    rule: str, message: str, *, reason: str | None = None, field_path: str | None = None
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `message` must name the field and what is allowed.
    On a rule over several fields, `field_path` (".maxReplicas") is the one the apiserver blames:
    its path leads the error."""
    entry = {"rule": rule, "message": message}
    if reason is not None:
        entry["reason"] = reason
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


POSITIVE_AMOUNT_RULE = cel(
    "double(self) > 0.0",
    "must be above 0: a budget of nothing refuses every request",
    reason="FieldValueInvalid",
)


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """The json_schema_extra that attaches CEL rules to a model or a field."""
    return {"x-kubernetes-validations": list(rules)}


class Model(pydantic.BaseModel):
    """Base of every CRD model: camelCase on the wire, unknown fields rejected, values frozen."""

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


DecimalUSD = Annotated[
    str,
    pydantic.Field(
        pattern=DECIMAL_PATTERN,
        max_length=22,
        description='A non-negative amount of US dollars as a decimal string, e.g. "0.000150".',
    ),
]
ResourceName = Annotated[
    str, pydantic.Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)
]


class SecretKeyRef(Model):
    """A key in a Secret in the resource's own namespace. Secrets never appear in spec or status."""

    name: ResourceName = pydantic.Field(description="Name of the Secret.")
    key: str = pydantic.Field(
        min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within it."
    )


class ObjectRef(Model):
    """A reference to another object of this API in the same namespace."""

    name: ResourceName = pydantic.Field(description="Name of the referenced object.")


class Auth(Model):
    """Client API keys; the gateway compares hashes and never logs a key."""

    api_keys_secret_ref: ObjectRef = pydantic.Field(
        alias="apiKeysSecretRef", description="A Secret whose values are the accepted keys."
    )


class Pricing(Model):
    """Prices per million tokens; overrides the built-in table for the model."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.cachedInputPerMTokUSD)"
                " || double(self.cachedInputPerMTokUSD) <= double(self.inputPerMTokUSD)",
                "pricing.cachedInputPerMTokUSD must not be above inputPerMTokUSD"
                " (a cached input token is a discounted input token)",
                reason="FieldValueInvalid",
                field_path=".cachedInputPerMTokUSD",
            )
        )
    )

    input_per_m_tok_usd: DecimalUSD = pydantic.Field(alias="inputPerMTokUSD")
    cached_input_per_m_tok_usd: DecimalUSD | None = pydantic.Field(
        default=None, alias="cachedInputPerMTokUSD"
    )
    output_per_m_tok_usd: DecimalUSD = pydantic.Field(alias="outputPerMTokUSD")


Provider = Literal["openai", "azure-openai", "openai-compatible"]
UUID_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"


class EntraIdentity(Model):
    """A Microsoft Entra ID application the operator or the data plane signs in as: with its
    client secret, or (no secret) as the pod's workload identity federated to it."""

    tenant_id: str = pydantic.Field(
        max_length=253,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
        description="The directory (tenant) ID, or its domain (contoso.onmicrosoft.com).",
    )
    client_id: str = pydantic.Field(
        pattern=UUID_PATTERN, description="The application (client) ID."
    )
    client_secret_ref: SecretKeyRef | None = pydantic.Field(
        default=None,
        description="The client secret; unset: workload identity (the pod's ServiceAccount "
        "federated to this application, its projected token in AZURE_FEDERATED_TOKEN_FILE).",
    )


class Backend(Model):
    """One upstream model server: the lowest priority serves, higher ones are fallbacks."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.provider != 'azure-openai' || (has(self.deployment) && has(self.apiVersion))",
                "deployment and apiVersion are required when provider is azure-openai",
                reason="FieldValueRequired",
            ),
            cel(
                "self.provider == 'openai' || has(self.baseURL)",
                "baseURL is required when provider is azure-openai or openai-compatible",
                reason="FieldValueRequired",
            ),
            cel(
                "self.provider == 'azure-openai' || !has(self.deployment)",
                "deployment is only for provider azure-openai (other providers take model)",
                reason="FieldValueForbidden",
                field_path=".deployment",
            ),
            cel(
                "self.provider == 'azure-openai' || !has(self.apiVersion)",
                "apiVersion is only for provider azure-openai",
                reason="FieldValueForbidden",
                field_path=".apiVersion",
            ),
            cel(
                "self.provider != 'azure-openai' || !has(self.baseURL)"
                " || !self.baseURL.contains('/openai/deployments')",
                "baseURL of an azure-openai backend is the resource's URL"
                " (https://NAME.openai.azure.com); deployment names the deployment",
                reason="FieldValueInvalid",
                field_path=".baseURL",
            ),
            cel(
                "self.provider == 'azure-openai' || !has(self.entraID)",
                "entraID is only for provider azure-openai",
                reason="FieldValueForbidden",
                field_path=".entraID",
            ),
            cel(
                "!has(self.entraID) || !has(self.apiKeySecretRef)",
                "an azure-openai backend authenticates with apiKeySecretRef or entraID, not both",
                reason="FieldValueForbidden",
                field_path=".entraID",
            ),
        )
    )

    name: ResourceName = pydantic.Field(description="Unique name of this backend in the list.")
    provider: Provider = pydantic.Field(
        description="Wire dialect: openai, azure-openai or openai-compatible (any base URL)."
    )
    model: str = pydantic.Field(
        min_length=1,
        max_length=128,
        pattern=TRIMMED_PATTERN,
        description="Model name sent upstream, e.g. gpt-4o-mini.",
    )
    base_url: str | None = pydantic.Field(
        default=None,
        alias="baseURL",
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description="Base URL ending before /chat/completions; defaults to OpenAI's for openai.",
        json_schema_extra=validations(
            cel(
                API_PATH_RULE,
                "baseURL must end before the API path the client adds, e.g."
                " https://api.example.com/v1 (not .../v1/chat/completions)",
                reason="FieldValueInvalid",
            )
        ),
    )
    deployment: str | None = pydantic.Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Azure OpenAI deployment name.",
    )
    api_version: str | None = pydantic.Field(
        default=None,
        alias="apiVersion",
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$",
        max_length=32,
        description="Azure OpenAI api-version, e.g. 2024-10-21.",
    )
    api_key_secret_ref: SecretKeyRef | None = pydantic.Field(
        default=None,
        alias="apiKeySecretRef",
        description="Secret key holding the upstream API key.",
    )
    entra_id: EntraIdentity | None = pydantic.Field(
        default=None,
        alias="entraID",
        description="Azure OpenAI with a Microsoft Entra ID token (scope "
        "https://cognitiveservices.azure.com/.default) instead of a key.",
    )
    priority: int = pydantic.Field(
        default=0,
        ge=0,
        le=10,
        description="Lower is preferred; higher priorities are fallbacks, tried in order.",
    )
    weight: int = pydantic.Field(
        default=1, ge=1, le=100, description="Share of traffic among backends of equal priority."
    )
    timeout_ms: int = pydantic.Field(
        default=30000, ge=100, le=600000, description="Upstream request timeout in milliseconds."
    )


ModelRoute = Literal["chat", "completions", "embeddings"]


class ModelCall(Model):
    """What a stream or batch job calls: a RealtimeEndpoint by reference, or a backend directly."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.endpointRef) != has(self.backend)",
                "exactly one of endpointRef or backend must be set",
                reason="FieldValueInvalid",
            ),
            cel(
                "!has(self.rowsPerRequest) || self.rowsPerRequest == 1"
                " || (has(self.route) && self.route != 'chat')",
                "rowsPerRequest above 1 needs route completions or embeddings"
                " (chat takes one conversation per request)",
                reason="FieldValueInvalid",
            ),
        )
    )

    endpoint_ref: ObjectRef | None = pydantic.Field(
        default=None, description="A RealtimeEndpoint in the same namespace (cache, limits, cost)."
    )
    backend: Backend | None = pydantic.Field(default=None, description="A backend called directly.")
    prompt: str = pydantic.Field(
        min_length=1,
        max_length=16384,
        description="Prompt template; {field} is replaced by the event or record field.",
        json_schema_extra=validations(
            cel(
                TEMPLATE_RULE,
                "prompt is not a valid template: each { must open a placeholder such as {text}"
                " and each } close one; write {{ and }} for literal braces",
                reason="FieldValueInvalid",
            ),
            cel(
                PLACEHOLDER_RULE,
                "prompt needs at least one placeholder such as {text}, the field of each event"
                " or record that fills it",
                reason="FieldValueInvalid",
            ),
        ),
    )
    route: ModelRoute = pydantic.Field(
        default="chat",
        description="The OpenAI API called: chat, completions (prompt lists) or embeddings.",
    )
    rows_per_request: int = pydantic.Field(
        default=1,
        ge=1,
        le=2048,
        description="Events or records sent in one completions or embeddings request.",
    )
    max_tokens: int = pydantic.Field(default=256, ge=1, le=131072, description="Output token cap.")
    max_in_flight: int = pydantic.Field(
        default=64, ge=1, le=4096, description="Requests in flight per worker."
    )
    max_attempts: int = pydantic.Field(
        default=3, ge=1, le=10, description="Attempts per record, the first included."
    )


DeletionPolicy = Literal["Retain", "Delete"]

ConditionStatus = Literal["True", "False", "Unknown"]


RATIO_PATTERN = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"


MAX_QUEUE_SPANS = 2048
"""Spans a program holds for export unless told otherwise (the batch span processor's default)."""


class Telemetry(Model):
    """OpenTelemetry traces: where the data plane sends its spans (OTLP over HTTP, protobuf) and
    how many traces it records. A caller's W3C `traceparent` is continued and passed on."""

    otlp_endpoint: str = pydantic.Field(
        alias="otlpEndpoint",
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description="A collector's OTLP/HTTP base URL, e.g."
        " http://otel-collector.observability:4318; spans go to <it>/v1/traces"
        " (OTEL_EXPORTER_OTLP_ENDPOINT's meaning).",
    )
    sampling_ratio: str = pydantic.Field(
        default="1",
        max_length=8,
        pattern=RATIO_PATTERN,
        description='The share of traces recorded, a decimal from "0" to "1" (e.g. "0.05"),'
        " for requests that carry no traceparent; one that does is recorded when its sampled"
        " flag says so (OpenTelemetry's parentbased_traceidratio sampler).",
    )
    max_queue_spans: int = pydantic.Field(
        default=MAX_QUEUE_SPANS,
        alias="maxQueueSpans",
        ge=16,
        le=100_000,
        description="Ended spans each program (a gateway replica, a stream job's Python"
        " worker) holds for export, 16 to 100000 (OTEL_BSP_MAX_QUEUE_SIZE's meaning); past"
        " it new spans are dropped and counted, never waited on. About 1 KB of memory each.",
    )


class Condition(Model):
    """metav1.Condition: the one way this API reports state."""

    type: str = pydantic.Field(max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    status: ConditionStatus
    reason: str = pydantic.Field(
        max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    message: str = pydantic.Field(default="", max_length=32768)
    last_transition_time: datetime.datetime
    observed_generation: int | None = pydantic.Field(default=None, ge=0)


def condition_list() -> Any:
    """A `conditions` field: a list keyed by type, so server-side apply merges entries by type."""
    return pydantic.Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def stale_field() -> Any:
    """`stale` of figures over a window: whether they are the last ones read, not current."""
    return pydantic.Field(
        default=None,
        description="True when these are the last figures read (over `window`), no longer"
        " current: the stats store did not answer at the last reconcile, or (BatchJob) the"
        " running run stopped publishing its progress. Kept until they are current again.",
    )


class Windowed(Model):
    """Counts over the stats' sliding `window`, as observed at `observedAt` (absent only from
    figures written before they carried them)."""

    window: str | None = pydantic.Field(
        default=None, max_length=16, description="e.g. 5m; run: a BatchJob's latest run"
    )
    observed_at: datetime.datetime | None = None
    stale: bool | None = stale_field()


class LatencyStatus(Model):
    """Latency percentiles in whole milliseconds over `window`, as observed at `observedAt`."""

    p50_ms: int = pydantic.Field(ge=0, alias="p50Ms")
    p95_ms: int = pydantic.Field(ge=0, alias="p95Ms")
    p99_ms: int = pydantic.Field(ge=0, alias="p99Ms")
    window: str = pydantic.Field(max_length=16, description="e.g. 5m")
    observed_at: datetime.datetime
    stale: bool | None = stale_field()


class CostStatus(Model):
    """Spend over `window`, in decimal US dollars; each kind adds its per-unit price."""

    total_usd: DecimalUSD = pydantic.Field(alias="totalUSD")
    window: str = pydantic.Field(max_length=16)
    observed_at: datetime.datetime
    stale: bool | None = stale_field()


CA_CERTS_MAX_LENGTH = 8192
"""The most characters of `Address.ca_certs`: the two CAs a rotation publishes, and room for
RSA-4096 certificates or a short chain."""


class Address(Model):
    """Where a server is reached inside the cluster (Knative's Addressable: `url`, `CACerts`)."""

    url: str = pydantic.Field(max_length=2048, description="Its Service's URL.")
    ca_certs: str | None = pydantic.Field(
        default=None,
        alias="CACerts",
        max_length=CA_CERTS_MAX_LENGTH,
        description="The CA certificates (PEM, certificates only) that an https server's"
        " clients verify it with: the ca.crt of its certificate Secret, both CAs while a"
        " self-signed one rotates. Absent for http, for a certificate whose Secret holds no"
        " ca.crt (a public CA: the system's CAs verify it), and for a ca.crt over"
        f" {CA_CERTS_MAX_LENGTH} characters (its clients mount the CA ConfigMap instead).",
    )


class Status(Model):
    """The part of status every kind shares."""

    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    conditions: list[Condition] = condition_list()
    state: str | None = pydantic.Field(
        default=None, max_length=64, description="Printable summary for columns; see conditions."
    )
    latency: LatencyStatus | None = None
