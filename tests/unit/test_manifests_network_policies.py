"""The NetworkPolicies a RealtimeEndpoint's managed Redis and a StreamPipeline's push gateway get:
rendered from the spec and the admin's settings without a cluster."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

from tiers import api
from tiers.operator.manifests import (
    batch_children,
    gateway,
    labels,
    network_policies,
    realtime_children,
    redis,
    stream_children,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENDPOINT = labels.Owner(api.API_VERSION, api.REALTIME_ENDPOINT.kind, "chat", "shop", "uid-1")
PIPELINE = labels.Owner(api.API_VERSION, api.STREAM_PIPELINE.kind, "reviews", "shop", "uid-2")
IMAGE = "tiers:0.1.0"
ON = network_policies.Settings()
IN_CLUSTER = network_policies.Settings(
    operator_namespace="tiers-system",
    operator_pod_labels={"app.kubernetes.io/name": "tiers", "app.kubernetes.io/instance": "t"},
    push_gateway_from_namespaces=("ingress-nginx",),
)


def example(kind: str, path: str, **changes: Any) -> Any:
    spec = yaml.safe_load((ROOT / "examples" / path).read_text())["spec"]
    return getattr(api, kind).model_validate({**spec, **changes})


def endpoint_spec(**changes: Any) -> api.RealtimeEndpointSpec:
    spec: api.RealtimeEndpointSpec = example(
        "RealtimeEndpointSpec", "01-realtime/realtime-endpoint.yaml", **changes
    )
    return spec


def pipeline_spec(**changes: Any) -> api.StreamPipelineSpec:
    spec: api.StreamPipelineSpec = example(
        "StreamPipelineSpec", "02-stream/stream-pipeline.yaml", **changes
    )
    return spec


def policies(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [child for child in children if child["kind"] == "NetworkPolicy"]


def endpoint_children(
    spec: api.RealtimeEndpointSpec, settings: network_policies.Settings | None
) -> list[dict[str, Any]]:
    return realtime_children.desired_children(ENDPOINT, spec, image=IMAGE, network_policy=settings)


def pipeline_children(
    spec: api.StreamPipelineSpec, settings: network_policies.Settings | None
) -> list[dict[str, Any]]:
    return stream_children.desired_children(
        PIPELINE, spec, image=IMAGE, stats_redis_url=None, endpoint_model="gpt-4o",
        network_policy=settings,
    )  # fmt: skip


def test_a_managed_redis_gets_a_policy_that_selects_only_its_own_pods_on_its_port() -> None:
    (policy,) = policies(endpoint_children(endpoint_spec(), ON))
    assert policy["metadata"]["name"] == "chat-redis"
    assert policy["metadata"]["namespace"] == "shop"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert (
        redis.COMPONENT.selector(ENDPOINT).items()
        <= policy["spec"]["podSelector"]["matchLabels"].items()
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": redis.PORT}]


def test_the_redis_admits_its_gateways_only_not_the_jobs_that_call_the_endpoint() -> None:
    # Jobs call the endpoint through its gateway; their stats go to a Redis of their own.
    (policy,) = policies(endpoint_children(endpoint_spec(), ON))
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    **gateway.COMPONENT.selector(ENDPOINT),
                    "app.kubernetes.io/component": "gateway",
                }
            }
        },
    ]


def test_a_policy_selects_its_redis_by_role_not_every_redis_of_that_name() -> None:
    (policy,) = policies(endpoint_children(endpoint_spec(), ON))
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "cache"


def test_the_redis_admits_the_operator_pod_that_reads_its_stats_in_its_own_namespace() -> None:
    (policy,) = policies(endpoint_children(endpoint_spec(), IN_CLUSTER))
    operator = policy["spec"]["ingress"][0]["from"][-1]
    assert operator == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tiers-system"}},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "tiers", "app.kubernetes.io/instance": "t"}
        },
    }


def test_a_policy_follows_the_managed_redis_it_guards_in_apply_order() -> None:
    kinds = [child["kind"] for child in endpoint_children(endpoint_spec(), ON)]
    assert kinds.index("NetworkPolicy") == kinds.index("Service") + 1


def test_no_policy_without_a_managed_redis_or_when_the_admin_turns_them_off() -> None:
    referenced = endpoint_spec(cache={"redisURLSecretRef": {"name": "redis", "key": "url"}})
    assert policies(endpoint_children(referenced, ON)) == []
    assert policies(endpoint_children(endpoint_spec(), None)) == []
    off = network_policies.Settings(enabled=False)
    assert policies(endpoint_children(endpoint_spec(), off)) == []


def test_a_push_gateway_admits_its_own_namespace_and_the_namespaces_the_admin_named() -> None:
    (policy,) = [p for p in policies(pipeline_children(pipeline_spec(), IN_CLUSTER))
                 if p["metadata"]["name"] == "reviews-push"]  # fmt: skip
    assert (
        stream_children.PUSH.selector(PIPELINE).items()
        <= policy["spec"]["podSelector"]["matchLabels"].items()
    )
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": stream_children.PUSH_PORT}]
    assert rule["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
    ]


def test_a_pipelines_stats_redis_admits_its_job_and_the_operator_only() -> None:
    (policy,) = [p for p in policies(pipeline_children(pipeline_spec(), IN_CLUSTER))
                 if p["metadata"]["name"] == "reviews-stream-stats"]  # fmt: skip
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "stats"
    (rule,) = policy["spec"]["ingress"]
    job = {**stream_children.JOB.selector(PIPELINE), "app.kubernetes.io/component": "stream-job"}
    assert rule["from"][0] == {"podSelector": {"matchLabels": job}}
    assert rule["from"][1]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "tiers-system"
    }
    assert len(rule["from"]) == 2


def test_a_pipeline_has_no_policy_when_they_are_off() -> None:
    off = network_policies.Settings(enabled=False)
    assert policies(pipeline_children(pipeline_spec(), off)) == []


def test_settings_are_read_from_the_operators_environment() -> None:
    settings = network_policies.settings_from(
        {
            network_policies.ENABLED_ENV: "false",
            network_policies.OPERATOR_NAMESPACE_ENV: "tiers-system",
            network_policies.OPERATOR_POD_LABELS_ENV: "a=1,b=2",
            network_policies.PUSH_FROM_NAMESPACES_ENV: "x, y",
        }
    )
    assert settings == network_policies.Settings(
        enabled=False,
        operator_namespace="tiers-system",
        operator_pod_labels={"a": "1", "b": "2"},
        push_gateway_from_namespaces=("x", "y"),
    )
    assert network_policies.settings_from({}) == network_policies.Settings()


def test_a_batch_jobs_stats_redis_admits_its_runs_and_the_operator_only() -> None:
    owner = labels.Owner(api.API_VERSION, api.BATCH_JOB.kind, "triage", "shop", "uid-3")
    children = batch_children.render_stats_redis(owner, password=None, network_policy=IN_CLUSTER)
    (policy,) = policies(children)
    assert policy["metadata"]["name"] == "triage-batch-stats"
    runs = {**batch_children.RUN.selector(owner), "app.kubernetes.io/component": "batch-run"}
    assert policy["spec"]["ingress"][0]["from"][0] == {"podSelector": {"matchLabels": runs}}
    assert policies(batch_children.render_stats_redis(owner, password=None)) == []
