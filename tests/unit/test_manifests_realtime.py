"""The objects a RealtimeEndpoint owns, rendered from its spec without a cluster."""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import yaml

from tiers import api
from tiers.operator import manifests
from tiers.operator.manifests import gateway
from tiers.operator.manifests import redis as redis_manifests
from tiers.operator.manifests import telemetry as telemetry_manifests
from tiers.runtime import providers
from tiers.runtime.gateway import config, metrics
from tiers.runtime.tracing import export

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "01-realtime" / "realtime-endpoint.yaml"
OWNER = manifests.Owner(
    api_version=api.API_VERSION,
    kind=api.REALTIME_ENDPOINT.kind,
    name="chat",
    namespace="prod",
    uid="0f4c2a1e-7d3b-4c55-9a1e-2b6f3c8d9e10",
)
IMAGE = "registry.example/tiers:0.1.0"
CONFIG_HASH = "tiers.dev/config-hash"
ALL_SECRET_REFS = {
    "backends": [
        {
            "name": "primary",
            "provider": "openai",
            "model": "gpt-4o",
            "apiKeySecretRef": {"name": "upstream-keys", "key": "openai-key"},
        }
    ],
    "auth": {"apiKeysSecretRef": {"name": "client-keys"}},
    "cache": {"redisURLSecretRef": {"name": "shared-redis", "key": "url"}},
}


def example_spec(**changes: Any) -> api.RealtimeEndpointSpec:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    return api.RealtimeEndpointSpec.model_validate({**spec, **changes})


def minimal_spec(**fields: Any) -> api.RealtimeEndpointSpec:
    backends = [{"name": "a", "provider": "openai", "model": "gpt-4o-mini"}]
    return api.RealtimeEndpointSpec.model_validate(
        {"model": "gpt-4o-mini", "backends": backends, **fields}
    )


def render(spec: api.RealtimeEndpointSpec, *, image: str = IMAGE) -> list[dict[str, Any]]:
    return manifests.desired_children(OWNER, spec, image=image)


def kinds_and_names(children: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(child["kind"], child["metadata"]["name"]) for child in children]


def find(children: list[dict[str, Any]], kind: str, name: str = "chat-gateway") -> dict[str, Any]:
    (found,) = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    return found


def pod_spec(children: list[dict[str, Any]], name: str = "chat-gateway") -> dict[str, Any]:
    spec: dict[str, Any] = find(children, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def gateway_container(children: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = pod_spec(children)["containers"]
    return container


def env_by_name(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in gateway_container(children)["env"]}


def config_hash(children: list[dict[str, Any]]) -> str:
    annotations = find(children, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    value: str = annotations[CONFIG_HASH]
    return value


def rendered_config(children: list[dict[str, Any]]) -> config.GatewayConfig:
    return config.GatewayConfig.model_validate_json(
        find(children, "ConfigMap")["data"]["gateway.json"]
    )


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value


def test_the_public_surface_is_explicit() -> None:
    for name in manifests.__all__:
        assert hasattr(manifests, name), f"manifests.__all__ names {name}, which it lacks"


def test_the_example_renders_its_children_in_apply_order() -> None:
    assert kinds_and_names(render(example_spec())) == [
        ("ConfigMap", "chat-gateway"),
        ("Deployment", "chat-redis"),
        ("Service", "chat-redis"),
        ("Deployment", "chat-gateway"),
        ("Service", "chat-gateway"),
        ("PodDisruptionBudget", "chat-gateway"),
    ]


def test_children_use_the_api_versions_the_apiserver_serves() -> None:
    versions = {child["kind"]: child["apiVersion"] for child in render(example_spec())}
    assert versions == {
        "ConfigMap": "v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "PodDisruptionBudget": "policy/v1",
    }


def test_every_child_is_controlled_by_the_endpoint_in_its_namespace() -> None:
    for child in render(example_spec(autoscaling={"maxReplicas": 4})):
        metadata = child["metadata"]
        assert metadata["namespace"] == "prod"
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": "tiers.dev/v1alpha1",
                "kind": "RealtimeEndpoint",
                "name": "chat",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_children_carry_the_recommended_labels() -> None:
    children = render(example_spec())
    assert find(children, "Service")["metadata"]["labels"] == {
        "app.kubernetes.io/name": "tiers-gateway",
        "app.kubernetes.io/instance": "chat",
        "app.kubernetes.io/component": "gateway",
        "app.kubernetes.io/part-of": "tiers",
        "app.kubernetes.io/managed-by": "tiers-operator",
        "tiers.dev/endpoint": "chat",
    }
    redis_labels = find(children, "Deployment", "chat-redis")["metadata"]["labels"]
    assert redis_labels["app.kubernetes.io/name"] == "tiers-redis"
    assert redis_labels["app.kubernetes.io/component"] == "cache"


@pytest.mark.parametrize("name", ["chat-gateway", "chat-redis"])
def test_selectors_match_the_pods_they_front(name: str) -> None:
    children = render(example_spec())
    deployment = find(children, "Deployment", name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    assert selector.items() <= pod_labels.items()
    assert find(children, "Service", name)["spec"]["selector"] == selector


def test_the_pdb_lets_one_gateway_pod_go_at_a_time() -> None:
    children = render(example_spec())
    pdb = find(children, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"] == find(children, "Deployment")["spec"]["selector"]


def test_the_service_sends_port_8080_to_the_gateways_http_port() -> None:
    children = render(example_spec())
    service = find(children, "Service")["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert gateway_container(children)["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    ]


def test_the_url_names_the_gateway_service() -> None:
    assert manifests.gateway_url(OWNER, minimal_spec()) == "http://chat-gateway.prod.svc:8080/v1"


def test_the_pod_serves_the_mounted_config_file() -> None:
    children = render(example_spec())
    container = gateway_container(children)
    assert container["image"] == IMAGE
    assert container["command"] == [
        "python", "-m", "tiers.runtime.gateway", "--config", "/etc/tiers/gateway.json",
        "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/tiers", "readOnly": True}
    volumes = {volume["name"]: volume for volume in pod_spec(children)["volumes"]}
    assert volumes["config"]["configMap"] == {"name": "chat-gateway"}
    assert set(find(children, "ConfigMap")["data"]) == {"gateway.json"}


def test_the_gateway_is_probed_and_sized() -> None:
    container = gateway_container(render(example_spec()))
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_a_rollout_keeps_capacity_and_pods_spread_across_nodes() -> None:
    children = render(example_spec())
    assert find(children, "Deployment")["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
    }
    (spread,) = pod_spec(children)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == find(children, "Service")["spec"]["selector"]


def test_the_config_file_round_trips_through_the_gateways_model() -> None:
    spec = example_spec()
    children = render(spec)
    expected = manifests.gateway_config(OWNER, spec, redis_url_env="TIERS_REDIS_URL")
    assert rendered_config(children) == expected


def test_the_config_carries_the_spec() -> None:
    settings = rendered_config(render(example_spec()))
    assert settings.endpoint == "prod/chat"
    assert settings.model == "gpt-4o-mini"
    assert settings.redis_url is None
    assert settings.api_keys_dir is None
    assert (settings.cache.enabled, settings.cache.ttl_seconds) == (True, 3600)
    assert settings.rate_limits == config.RateLimitConfig(
        requests_per_minute=6000, tokens_per_minute=2_000_000
    )
    assert settings.retries.max_attempts == 3


def test_the_monthly_budget_reaches_the_gateway_as_an_exact_decimal() -> None:
    assert rendered_config(render(example_spec(budget=None))).budget_usd is None
    settings = rendered_config(render(example_spec(budget={"monthlyUSD": "250.10"})))
    assert settings.budget_usd == Decimal("250.10")


def test_backends_keep_their_order_and_name_their_key_variables() -> None:
    backends = rendered_config(render(example_spec())).backends
    assert [(b.name, b.priority, b.api_key_env) for b in backends] == [
        ("primary", 0, None),
        ("azure-fallback", 1, "TIERS_BACKEND_1_API_KEY"),
    ]
    azure = backends[1]
    assert (azure.provider, azure.deployment, azure.api_version) == (
        "azure-openai",
        "gpt-4o-mini",
        "2024-10-21",
    )
    assert azure.base_url == "https://my-resource.openai.azure.com"


def test_each_backend_key_reaches_the_pod_from_its_secret() -> None:
    children = render(example_spec())
    assert env_by_name(children)["TIERS_BACKEND_1_API_KEY"] == {
        "name": "TIERS_BACKEND_1_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "azure-openai", "key": "api-key"}},
    }
    key_envs = {b.api_key_env for b in rendered_config(children).backends} - {None}
    assert key_envs == {name for name in env_by_name(children) if name.endswith("_API_KEY")}


def entra_spec(**identity: Any) -> api.RealtimeEndpointSpec:
    backend = {
        "name": "azure", "provider": "azure-openai", "model": "gpt-4o-mini",
        "baseURL": "https://my-resource.openai.azure.com", "deployment": "gpt-4o-mini",
        "apiVersion": "2024-10-21",
        "entraID": {"tenantId": "contoso.onmicrosoft.com",
                    "clientId": "22222222-3333-4444-8555-666666666666", **identity},
    }  # fmt: skip
    return minimal_spec(backends=[backend])


def test_an_entra_backend_gets_its_client_secret_where_a_key_would_be() -> None:
    children = render(entra_spec(clientSecretRef={"name": "aoai-app", "key": "secret"}))
    [backend] = rendered_config(children).backends
    assert backend.entra == providers.EntraConfig(
        tenant_id="contoso.onmicrosoft.com", client_id="22222222-3333-4444-8555-666666666666"
    )
    assert backend.api_key_env == "TIERS_BACKEND_0_API_KEY"
    assert env_by_name(children)["TIERS_BACKEND_0_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "aoai-app", "key": "secret"}
    }


def test_an_entra_backend_on_workload_identity_gets_no_secret() -> None:
    children = render(entra_spec())
    [backend] = rendered_config(children).backends
    assert backend.entra is not None and backend.api_key_env is None
    assert not [name for name in env_by_name(children) if name.startswith("TIERS_BACKEND_")]


def test_prices_cover_the_asked_model_and_every_upstream_model() -> None:
    spec = example_spec(
        model="chat-default",
        backends=[
            {"name": "a", "provider": "openai", "model": "gpt-4o-mini"},
            {"name": "b", "provider": "openai", "model": "gpt-4o", "priority": 1},
        ],
    )
    prices = rendered_config(render(spec)).prices
    assert list(prices) == ["chat-default", "gpt-4o-mini", "gpt-4o"]
    assert {str(p.input_per_m_tok_usd) for p in prices.values()} == {"0.15"}
    assert {str(p.output_per_m_tok_usd) for p in prices.values()} == {"0.60"}
    assert {str(p.cached_input_per_m_tok_usd) for p in prices.values()} == {"0.075"}


def test_without_pricing_the_gateway_keeps_its_price_table() -> None:
    assert rendered_config(render(minimal_spec())).prices == {}


def test_the_config_hash_is_a_digest_of_the_configmap() -> None:
    children = render(example_spec())
    data = find(children, "ConfigMap")["data"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    assert config_hash(children) == hashlib.sha256(canonical).hexdigest()[:16]


@pytest.mark.parametrize(
    "change",
    [{"cache": {"ttlSeconds": 60}}, {"retries": {"maxAttempts": 5}}, {"model": "gpt-4o"}],
    ids=["cache-ttl", "retries", "model"],
)
def test_a_config_change_changes_the_config_hash(change: dict[str, Any]) -> None:
    assert config_hash(render(example_spec(**change))) != config_hash(render(example_spec()))


@pytest.mark.parametrize(
    ("change", "image"),
    [
        ({"replicas": 5}, IMAGE),
        ({"suspend": True}, IMAGE),
        ({"autoscaling": {"maxReplicas": 8}}, IMAGE),
        ({}, "registry.example/tiers:0.2.0"),
    ],
    ids=["replicas", "suspend", "autoscaling", "image"],
)
def test_changes_outside_the_config_keep_the_config_hash(
    change: dict[str, Any], image: str
) -> None:
    changed = render(example_spec(**change), image=image)
    assert config_hash(changed) == config_hash(render(example_spec()))


def test_rendering_twice_gives_the_same_manifests() -> None:
    first = render(example_spec())
    first[0]["data"]["gateway.json"] = "edited by the caller"
    gateway_container(first)["resources"]["limits"]["memory"] = "1Gi"
    assert render(example_spec()) == render(example_spec())
    assert render(example_spec())[0]["data"]["gateway.json"] != "edited by the caller"
    assert gateway_container(render(example_spec()))["resources"]["limits"]["memory"] == "512Mi"


def test_replicas_come_from_the_spec() -> None:
    assert find(render(example_spec(replicas=3)), "Deployment")["spec"]["replicas"] == 3


def test_a_suspended_endpoint_scales_to_zero() -> None:
    children = render(example_spec(suspend=True))
    assert find(children, "Deployment")["spec"]["replicas"] == 0


def test_a_suspended_endpoint_has_no_autoscaler_to_scale_it_back_up() -> None:
    children = render(example_spec(suspend=True, autoscaling={"maxReplicas": 8}))
    assert find(children, "Deployment")["spec"]["replicas"] == 0
    assert "HorizontalPodAutoscaler" not in {child["kind"] for child in children}


def test_autoscaling_adds_an_hpa_and_leaves_replicas_to_it() -> None:
    spec = example_spec(
        autoscaling={"minReplicas": 3, "maxReplicas": 12, "targetCpuUtilizationPercent": 60}
    )
    children = render(spec)
    assert kinds_and_names(children)[-1] == ("HorizontalPodAutoscaler", "chat-gateway")
    assert "replicas" not in find(children, "Deployment")["spec"]
    hpa = find(children, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat-gateway"},
        "minReplicas": 3,
        "maxReplicas": 12,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60},
                },
            }
        ],
    }


def test_auth_mounts_the_api_keys_secret_and_the_callers_digests_read_only() -> None:
    children = render(example_spec(auth={"apiKeysSecretRef": {"name": "client-keys"}}))
    volumes = {volume["name"]: volume for volume in pod_spec(children)["volumes"]}
    sources = [
        {"secret": {"name": "client-keys"}},
        {"secret": {"name": "chat-client-keys", "optional": True}},
    ]
    assert volumes["api-keys"] == {"name": "api-keys", "projected": {"sources": sources}}
    mounts = {mount["name"]: mount for mount in gateway_container(children)["volumeMounts"]}
    assert mounts["api-keys"] == {
        "name": "api-keys",
        "mountPath": "/var/run/tiers/api-keys",
        "readOnly": True,
    }
    assert rendered_config(children).api_keys_dir == pathlib.Path("/var/run/tiers/api-keys")


ENTRA = {
    "issuer": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
    "audience": "api://tiers-chat",
    "jwksURL": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys",
    "tenantClaim": "azp",
    "algorithms": ["RS256"],
    "jwksRefreshSeconds": 20,
}


def test_jwt_callers_reach_the_gateway_config_with_their_checks() -> None:
    auth = {"apiKeysSecretRef": {"name": "client-keys"}, "jwt": ENTRA}
    settings = rendered_config(render(example_spec(auth=auth)))
    assert settings.jwt == config.JwtConfig(
        issuer=ENTRA["issuer"],
        audience="api://tiers-chat",
        jwks_url=ENTRA["jwksURL"],
        tenant_claim="azp",
        algorithms=("RS256",),
        clock_skew_s=60,
        jwks_refresh_s=20,
        jwks_min_refetch_s=20,
    )
    assert settings.api_keys_dir == pathlib.Path("/var/run/tiers/api-keys")


def test_jwt_callers_alone_still_admit_the_pipelines_and_jobs_that_call_by_key() -> None:
    children = render(example_spec(auth={"jwt": {**ENTRA, "jwksRefreshSeconds": 300}}))
    volumes = {volume["name"]: volume for volume in pod_spec(children)["volumes"]}
    sources = [{"secret": {"name": "chat-client-keys", "optional": True}}]
    assert volumes["api-keys"] == {"name": "api-keys", "projected": {"sources": sources}}
    settings = rendered_config(children)
    assert settings.jwt is not None and settings.jwt.jwks_min_refetch_s == 30
    assert settings.api_keys_dir == pathlib.Path("/var/run/tiers/api-keys")


def test_without_auth_no_keys_are_mounted() -> None:
    children = render(example_spec())
    assert "api-keys" not in {volume["name"] for volume in pod_spec(children)["volumes"]}


def test_the_managed_redis_is_what_the_gateway_connects_to() -> None:
    children = render(example_spec())
    assert env_by_name(children)["TIERS_REDIS_URL"] == {
        "name": "TIERS_REDIS_URL",
        "value": "redis://chat-redis.prod.svc:6379/0",
    }
    assert find(children, "Service", "chat-redis")["spec"]["ports"] == [
        {"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}
    ]


def test_the_managed_redis_is_an_ephemeral_lru_cache() -> None:
    children = render(example_spec())
    deployment = find(children, "Deployment", "chat-redis")["spec"]
    assert deployment["replicas"] == 1
    (container,) = deployment["template"]["spec"]["containers"]
    assert container["image"] == "redis:7.4-alpine"
    assert container["args"] == [
        "--save", "", "--appendonly", "no", "--maxmemory", "256mb",
        "--maxmemory-policy", "allkeys-lru",
    ]  # fmt: skip
    assert container["readinessProbe"]["tcpSocket"] == {"port": "redis"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "redis"}
    assert container["securityContext"]["runAsUser"] == 999
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert "emptyDir" in deployment["template"]["spec"]["volumes"][0]


def test_the_managed_redis_and_the_gateway_get_its_password_from_its_secret_only() -> None:
    children = render(example_spec())
    password = {"secretKeyRef": {"name": "chat-redis", "key": "password"}}
    (redis,) = find(children, "Deployment", "chat-redis")["spec"]["template"]["spec"]["containers"]
    assert redis["env"] == [{"name": "REDIS_PASSWORD", "valueFrom": password}]
    # Fed to redis-server on stdin by the shell: in no process's arguments, and no literal here.
    assert (
        redis["command"][:2] == ["sh", "-c"]
        and "requirepass $REDIS_PASSWORD" in redis["command"][2]
    )
    assert env_by_name(children)["TIERS_REDIS_PASSWORD"]["valueFrom"] == password
    settings = rendered_config(children)
    assert settings.redis_password_env == "TIERS_REDIS_PASSWORD" and settings.redis_url is None
    assert "Secret" not in {kind for kind, _ in kinds_and_names(children)}, (
        "created once, by the handler"
    )


def test_a_remade_password_rolls_the_redis_and_the_gateways_together() -> None:
    def digests(password: str) -> set[str]:
        children = manifests.desired_children(
            OWNER, example_spec(), image=IMAGE, redis_password=password
        )
        assert password not in json.dumps(children)
        return {
            find(children, "Deployment", name)["spec"]["template"]["metadata"]["annotations"][
                "tiers.dev/secret-hash"
            ]
            for name in ("chat-redis", "chat-gateway")
        }

    (first,) = digests("first-password")
    (second,) = digests("second-password")
    assert first != second


def test_the_password_secret_is_owned_by_the_endpoint_and_holds_a_new_random_password() -> None:
    first, second = redis_manifests.new_password(), redis_manifests.new_password()
    assert first != second and len(first) >= 40
    secret = redis_manifests.render_password_secret(OWNER, first)
    assert secret["metadata"]["name"] == "chat-redis"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert base64.b64decode(secret["data"]["password"]).decode() == first


def test_a_referenced_redis_replaces_the_managed_one() -> None:
    children = render(
        example_spec(cache={"redisURLSecretRef": {"name": "shared-redis", "key": "url"}})
    )
    assert "chat-redis" not in {name for _, name in kinds_and_names(children)}
    assert env_by_name(children)["TIERS_REDIS_URL"] == {
        "name": "TIERS_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "shared-redis", "key": "url"}},
    }
    assert rendered_config(children).redis_url is None
    assert rendered_config(children).redis_password_env is None, "its URL carries its password"
    assert "TIERS_REDIS_PASSWORD" not in env_by_name(children)


def test_no_cache_no_limits_and_no_budget_means_no_redis() -> None:
    children = render(example_spec(cache={"enabled": False}, rateLimits=None, budget=None))
    assert kinds_and_names(children) == [
        ("ConfigMap", "chat-gateway"),
        ("Deployment", "chat-gateway"),
        ("Service", "chat-gateway"),
        ("PodDisruptionBudget", "chat-gateway"),
    ]
    assert "TIERS_REDIS_URL" not in env_by_name(children)
    assert rendered_config(children).cache.enabled is False


def test_rate_limits_keep_the_managed_redis_when_the_cache_is_off() -> None:
    children = render(example_spec(cache={"enabled": False}))
    assert ("Deployment", "chat-redis") in kinds_and_names(children)
    assert "TIERS_REDIS_URL" in env_by_name(children)


@pytest.mark.parametrize(
    ("fields", "needed"),
    [
        ({}, True),
        ({"cache": {"enabled": False}}, False),
        ({"cache": {"enabled": False}, "rateLimits": {}}, False),
        ({"cache": {"enabled": False}, "rateLimits": {"requestsPerMinute": 60}}, True),
        ({"cache": {"enabled": False}, "rateLimits": {"tokensPerMinute": 1000}}, True),
        ({"cache": {"enabled": False}, "budget": {"monthlyUSD": "50"}}, True),
    ],
    ids=["cache", "nothing", "empty-limits", "requests-limit", "tokens-limit", "budget"],
)
def test_redis_is_needed_for_the_cache_or_for_rate_limits(
    fields: dict[str, Any], needed: bool
) -> None:
    assert manifests.needs_redis(minimal_spec(**fields)) is needed


def test_the_config_names_no_redis_variable_the_gateway_does_not_read() -> None:
    with pytest.raises(ValueError, match="TIERS_REDIS_URL"):
        manifests.gateway_config(OWNER, example_spec(), redis_url_env="REDIS_URL")


@pytest.mark.parametrize(
    "spec",
    [example_spec(), example_spec(**ALL_SECRET_REFS), minimal_spec(cache={"enabled": False})],
    ids=["example", "secret-refs", "no-redis"],
)
def test_every_container_runs_restricted(spec: api.RealtimeEndpointSpec) -> None:
    deployments = [child for child in render(spec) if child["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["runAsUser"] != 0
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            # A read-only root needs somewhere writable: each container mounts an emptyDir.
            empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
            assert empty_dirs & {m["name"] for m in container["volumeMounts"]}


def test_the_gateway_runs_as_the_images_nonroot_user() -> None:
    pod = pod_spec(render(example_spec()))
    assert pod["securityContext"]["runAsUser"] == 65532
    mounts = {
        m["mountPath"]: m["name"] for m in gateway_container(render(example_spec()))["volumeMounts"]
    }
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[mounts["/tmp"]]


def test_secrets_reach_pods_by_reference_only() -> None:
    children = render(example_spec(**ALL_SECRET_REFS))
    assert "Secret" not in {child["kind"] for child in children}
    for entry in gateway_container(children)["env"]:
        assert set(entry) == {"name", "valueFrom"}, f"{entry['name']} carries a literal value"
        assert set(entry["valueFrom"]) == {"secretKeyRef"}
    # The config file names variables and folders, never a Secret or a key within one.
    configmap_strings = set(strings_in(find(children, "ConfigMap")))
    file_text = find(children, "ConfigMap")["data"]["gateway.json"]
    for reference in ("upstream-keys", "openai-key", "client-keys", "shared-redis", "url"):
        assert f'"{reference}"' not in file_text
        assert reference not in configmap_strings


def test_the_semantic_cache_reaches_the_gateway_with_its_threshold_as_a_fraction() -> None:
    semantic = {
        "enabled": True,
        "similarityPercent": 92,
        "embeddingModel": "text-embedding-3-large",
        "maxEntries": 1000,
    }
    settings = rendered_config(render(minimal_spec(cache={"semantic": semantic})))
    assert settings.cache.semantic == config.SemanticCacheConfig(
        enabled=True, threshold=0.92, embedding_model="text-embedding-3-large", max_entries=1000
    )
    assert settings.cache.enabled, "the semantic cache stores its responses in the exact cache"


def test_without_a_semantic_block_the_semantic_cache_stays_off() -> None:
    assert rendered_config(render(minimal_spec())).cache.semantic is None
    declared_off = minimal_spec(cache={"semantic": {"enabled": False}})
    semantic = rendered_config(render(declared_off)).cache.semantic
    assert semantic is not None and not semantic.enabled


BATCH = {"storage": {"claimName": "batches"}, "maxFileMB": 50}


def test_without_the_batch_api_the_gateway_has_no_kubernetes_identity() -> None:
    children = render(minimal_spec())
    assert pod_spec(children)["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod_spec(children)
    assert not [c for c in children if c["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    assert json.loads(find(children, "ConfigMap")["data"]["gateway.json"])["batch"] is None


def test_the_batch_api_gives_the_gateway_exactly_the_batchjob_verbs_it_calls() -> None:
    children = render(minimal_spec(batch=BATCH))
    account = find(children, "ServiceAccount")
    role = find(children, "Role")
    binding = find(children, "RoleBinding")
    assert role["rules"] == [
        {"apiGroups": ["tiers.dev"], "resources": ["batchjobs"],
         "verbs": ["get", "list", "create", "patch"]},
    ]  # fmt: skip
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "chat-gateway",
    }  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "chat-gateway", "namespace": "prod"}
    ]
    for child in (account, role, binding):
        assert child["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    pod = pod_spec(children)
    assert pod["serviceAccountName"] == "chat-gateway"
    assert pod["automountServiceAccountToken"] is True


def test_the_batch_api_mounts_its_claim_and_tells_the_gateway_what_each_batch_becomes() -> None:
    children = render(minimal_spec(batch={**BATCH, "spark": {"executorCores": 3}}))
    pod = pod_spec(children)
    assert {"name": "batch", "persistentVolumeClaim": {"claimName": "batches"}} in pod["volumes"]
    mounts = gateway_container(children)["volumeMounts"]
    assert {"name": "batch", "mountPath": "/var/lib/tiers/batch"} in mounts
    settings = config.GatewayConfig.model_validate_json(
        find(children, "ConfigMap")["data"]["gateway.json"]
    )
    assert settings.batch is not None
    assert (settings.batch.namespace, settings.batch.endpoint_name) == ("prod", "chat")
    assert settings.batch.endpoint_uid == OWNER.uid
    assert settings.batch.claim_name == "batches"
    assert settings.batch.max_file_bytes == 50 * 1024 * 1024
    assert settings.batch.spark["executorCores"] == 3
    assert str(settings.batch.storage_dir) == "/var/lib/tiers/batch"


def test_a_batch_api_on_databricks_keeps_its_files_in_the_volume_with_the_workspace_token() -> None:
    databricks = {"host": "https://x.cloud.databricks.com/", "newCluster": {"numWorkers": 1},
                  "tokenSecretRef": {"name": "databricks", "key": "token"}}  # fmt: skip
    on_databricks = {**BATCH, "engine": "databricks", "databricks": databricks,
                     "storage": {"uri": "dbfs:/Volumes/main/tiers/b/chat/"}}  # fmt: skip
    children = render(minimal_spec(batch=on_databricks))
    pod = pod_spec(children)
    # No claim: a scratch folder the size of the largest upload, each sent on to the volume.
    assert {"name": "batch", "emptyDir": {"sizeLimit": "114Mi"}} in pod["volumes"]
    token = env_by_name(children)[gateway.BATCH_DATABRICKS_TOKEN_ENV]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "databricks", "key": "token"}
    settings = rendered_config(children).batch
    assert settings is not None and settings.engine == "databricks"
    assert settings.claim_name is None and settings.volume is not None
    assert settings.volume.host == "https://x.cloud.databricks.com"
    assert settings.volume.root == "/Volumes/main/tiers/b/chat"
    assert settings.volume.token_env == gateway.BATCH_DATABRICKS_TOKEN_ENV
    assert settings.databricks is not None and settings.databricks["newCluster"] == {
        "sparkVersion": "15.4.x-scala2.12", "nodeTypeId": "i3.xlarge", "numWorkers": 1,
    }  # fmt: skip
    # Each batch's BatchJob names the token's Secret as the endpoint does: never its value.
    assert settings.databricks["tokenSecretRef"] == {"name": "databricks", "key": "token"}


def test_a_batch_api_on_an_azure_workspace_uses_the_url_azure_gave_and_passes_the_id_on() -> None:
    workspace_id = ("/subscriptions/0a1b2c3d-0000-4000-8000-00000000abcd/resourceGroups/data-rg"
                    "/providers/Microsoft.Databricks/workspaces/ml-prod")  # fmt: skip
    azure = {"tenantId": "contoso.onmicrosoft.com", "clientId": "11111111-2222-4333-8444-555555555555",
             "clientSecretRef": {"name": "sp", "key": "secret"}}  # fmt: skip
    databricks = {"workspaceResourceId": workspace_id, "azure": azure,
                  "newCluster": {"numWorkers": 1},
                  "tokenSecretRef": {"name": "databricks", "key": "token"}}  # fmt: skip
    spec = minimal_spec(batch={**BATCH, "engine": "databricks", "databricks": databricks,
                               "storage": {"uri": "dbfs:/Volumes/main/tiers/b/chat"}})  # fmt: skip
    url = "https://adb-1234567890123456.7.azuredatabricks.net/"
    settings = rendered_config(manifests.desired_children(OWNER, spec, image=IMAGE,
                                                          workspace_url=url)).batch  # fmt: skip
    assert settings is not None and settings.volume is not None
    assert settings.volume.host == url.rstrip("/")
    # Each batch's BatchJob names the workspace by its ID and reads it again as any BatchJob,
    # as the endpoint's service principal: its Secret by reference only.
    assert settings.databricks is not None and "host" not in settings.databricks
    assert settings.databricks["workspaceResourceId"] == workspace_id
    assert settings.databricks["azure"] == azure
    # The handler reads the URL first: without it there is no config to render.
    with pytest.raises(ValueError, match=r"spec\.batch\.databricks\.workspaceResourceId"):
        render(spec)


def test_a_disabled_batch_api_renders_nothing_for_it() -> None:
    children = render(minimal_spec(batch={**BATCH, "enabled": False}))
    assert not [c for c in children if c["kind"] == "Role"]
    assert pod_spec(children)["automountServiceAccountToken"] is False


def test_the_audit_trail_is_off_unless_asked_and_samples_the_given_share() -> None:
    assert rendered_config(render(example_spec())).audit_sample_ratio == 0.0
    sampled = example_spec(audit={"samplePercent": 5})
    assert rendered_config(render(sampled)).audit_sample_ratio == 0.05
    assert rendered_config(render(example_spec(audit={}))).audit_sample_ratio == 1.0


def test_telemetry_reaches_the_gateway_config_as_a_collector_and_a_sampling_ratio() -> None:
    telemetry = {
        "otlpEndpoint": "http://otel-collector.observability:4318",
        "samplingRatio": "0.25",
    }
    settings = rendered_config(render(example_spec(telemetry=telemetry)))
    assert settings.tracing is not None
    assert settings.tracing.traces_url == "http://otel-collector.observability:4318/v1/traces"
    assert settings.tracing.sample_ratio == 0.25
    assert settings.tracing.service_name == "tiers-gateway"
    assert settings.tracing.max_queue_spans == api.common.MAX_QUEUE_SPANS == 2048


def test_a_small_span_queue_drops_and_counts_what_does_not_fit_instead_of_growing() -> None:
    """maxQueueSpans bounds the gateway's export queue: past it, a span is dropped and counted
    in tiers_gateway_spans_total{outcome="dropped"}, the queue never longer."""
    telemetry = {"otlpEndpoint": "http://127.0.0.1:9", "maxQueueSpans": 16}
    settings = rendered_config(render(example_spec(telemetry=telemetry)))
    assert settings.tracing is not None and settings.tracing.max_queue_spans == 16
    # As the gateway makes its tracer; not started, so nothing leaves the queue.
    tracer, exporter = export.tracer(settings.tracing, resource={}, counted=metrics.count_spans)
    before = dropped_spans()
    for _ in range(20):
        span = tracer.start("chat gpt-4o-mini")
        assert span is not None
        span.end()
    assert exporter.queued == 16
    assert dropped_spans() - before == 4


def dropped_spans() -> float:
    found = metrics.REGISTRY.get_sample_value("tiers_gateway_spans_total", {"outcome": "dropped"})
    return found or 0.0


def test_an_endpoint_without_telemetry_makes_no_spans() -> None:
    assert rendered_config(render(example_spec())).tracing is None


@pytest.mark.parametrize(
    ("telemetry", "field"),
    [
        ({"otlpEndpoint": "otel-collector:4318"}, "otlpEndpoint"),
        ({"otlpEndpoint": "http://user:secret@collector:4318"}, "otlpEndpoint"),
        ({"otlpEndpoint": "http://collector:4318", "samplingRatio": "1.5"}, "samplingRatio"),
        ({"otlpEndpoint": "http://collector:4318", "samplingRatio": "0.1 "}, "samplingRatio"),
        ({"otlpEndpoint": "http://collector:4318", "maxQueueSpans": 15}, "maxQueueSpans"),
        ({"otlpEndpoint": "http://collector:4318", "maxQueueSpans": 100_001}, "maxQueueSpans"),
    ],
)
def test_a_bad_telemetry_setting_is_refused_naming_its_field(
    telemetry: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        example_spec(telemetry=telemetry)


CHART_TELEMETRY = {
    "TIERS_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
    "TIERS_TRACES_SAMPLING_RATIO": "0.1",
    "TIERS_TRACES_MAX_QUEUE_SPANS": "4096",
}


def test_the_charts_telemetry_serves_endpoints_that_name_no_collector() -> None:
    default = telemetry_manifests.default_from(CHART_TELEMETRY)
    children = manifests.desired_children(
        OWNER, example_spec(), image=IMAGE, default_telemetry=default
    )
    settings = rendered_config(children)
    assert settings.tracing is not None
    assert settings.tracing.otlp_endpoint == "http://otel-collector.observability:4318"
    assert settings.tracing.sample_ratio == 0.1
    assert settings.tracing.max_queue_spans == 4096


def test_an_endpoints_own_telemetry_wins_over_the_charts() -> None:
    default = telemetry_manifests.default_from(CHART_TELEMETRY)
    own = {"otlpEndpoint": "http://team-collector:4318"}
    children = manifests.desired_children(
        OWNER, example_spec(telemetry=own), image=IMAGE, default_telemetry=default
    )
    settings = rendered_config(children)
    assert settings.tracing is not None
    assert (settings.tracing.otlp_endpoint, settings.tracing.sample_ratio) == (
        "http://team-collector:4318",
        1.0,
    )


def test_a_chart_without_a_collector_has_no_default_and_a_bad_one_names_its_field() -> None:
    assert telemetry_manifests.default_from({}) is None
    assert telemetry_manifests.default_from({"TIERS_OTLP_ENDPOINT": " "}) is None
    with pytest.raises(ValueError, match="samplingRatio"):
        telemetry_manifests.default_from({**CHART_TELEMETRY, "TIERS_TRACES_SAMPLING_RATIO": "2"})
    with pytest.raises(ValueError, match="maxQueueSpans"):
        telemetry_manifests.default_from({**CHART_TELEMETRY, "TIERS_TRACES_MAX_QUEUE_SPANS": "0"})
