"""The operator turns a RealtimeEndpoint into a running gateway and reports on it: children,
conditions, drift correction, and latency and cost in status once traffic flows."""

from __future__ import annotations

import json
import pathlib
import statistics
import time
from decimal import Decimal

import openai
import pytest
import redis
import yaml
from conftest import Kubectl, Processes, child_events, wait_for

from tiers import devenv
from tiers.devenv import dataplane, processes
from tiers.runtime.stats import spend

EXAMPLE = (
    pathlib.Path(__file__).resolve().parents[2]
    / "examples"
    / "01-realtime"
    / "realtime-endpoint.yaml"
)


def endpoint_manifest(**spec_changes: object) -> str:
    obj = yaml.safe_load(EXAMPLE.read_text())
    obj["spec"].update(spec_changes)
    return json.dumps(obj)


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def wait_condition(
    kubectl: Kubectl, namespace: str, type_: str, status: str, timeout_s: float = 30
) -> dict:
    def reached() -> dict | None:
        obj = kubectl.get("rte", "chat", "-n", namespace)
        return obj if condition(obj, type_).get("status") == status else None

    return wait_for(reached, timeout_s=timeout_s, what=f"{type_}={status}")


def create_azure_secret(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run(
        "create",
        "secret",
        "generic",
        "azure-openai",
        "-n",
        namespace,
        "--from-literal=api-key=sk-azure-test",
    )


def test_an_endpoint_becomes_ready_with_its_children_owned(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    create_azure_secret(kubectl, namespace)
    kubectl.apply(endpoint_manifest(), namespace=namespace)
    obj = wait_condition(kubectl, namespace, "Ready", "True")
    assert obj["status"]["url"] == f"http://chat-gateway.{namespace}.svc:8080/v1"
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]} == {
        "Ready": "True", "ProxyReady": "True", "CacheReady": "True", "BackendReady": "True",
        "BudgetExceeded": "False", "Reconciling": "False", "Stalled": "False",
    }  # fmt: skip
    uid = obj["metadata"]["uid"]
    for kind, name in [
        ("configmap", "chat-gateway"), ("deployment", "chat-gateway"), ("service", "chat-gateway"),
        ("poddisruptionbudget", "chat-gateway"), ("deployment", "chat-redis"), ("service", "chat-redis"),
    ]:  # fmt: skip
        child = kubectl.get(kind, name, "-n", namespace)
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
            ("RealtimeEndpoint", uid, True)
        ]
    deployment = kubectl.get("deployment", "chat-gateway", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == 2
    printed = kubectl.run("get", "rte", "chat", "-n", namespace).stdout
    assert "True" in printed and "chat-gateway" in printed


def test_a_missing_backend_secret_is_reported_by_field(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(endpoint_manifest(), namespace=namespace)
    obj = wait_condition(kubectl, namespace, "BackendReady", "False")
    backend = condition(obj, "BackendReady")
    assert backend["reason"] == "SecretNotFound"
    assert "spec.backends[1].apiKeySecretRef" in backend["message"]
    assert condition(obj, "Ready")["status"] == "False"
    create_azure_secret(kubectl, namespace)
    wait_condition(kubectl, namespace, "Ready", "True")


def test_a_missing_or_blank_auth_secret_is_a_condition_on_the_endpoint(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    create_azure_secret(kubectl, namespace)
    kubectl.apply(
        endpoint_manifest(auth={"apiKeysSecretRef": {"name": "chat-keys"}}), namespace=namespace
    )
    proxy = condition(wait_condition(kubectl, namespace, "ProxyReady", "False"), "ProxyReady")
    assert proxy["reason"] == "SecretNotFound"
    assert "spec.auth.apiKeysSecretRef" in proxy["message"] and "401" in proxy["message"]
    kubectl.run(
        "create", "secret", "generic", "chat-keys", "-n", namespace,
        "--from-literal=team-a=", "--from-literal=team-b=  ",
    )  # fmt: skip

    def blank_reported() -> dict | None:
        found = condition(kubectl.get("rte", "chat", "-n", namespace), "ProxyReady")
        return found if found.get("reason") == "NoAPIKeys" else None

    proxy = wait_for(blank_reported, timeout_s=30, what="ProxyReady reason NoAPIKeys")
    assert proxy["status"] == "False"
    assert "Secret chat-keys" in proxy["message"] and "no non-blank value" in proxy["message"]
    kubectl.run(
        "patch", "secret", "chat-keys", "-n", namespace, "--type=merge",
        "-p", '{"stringData": {"team-a": "sk-team-a"}}',
    )  # fmt: skip
    obj = wait_condition(kubectl, namespace, "Ready", "True")
    assert "sk-team-a" not in json.dumps(obj)


def test_a_spent_monthly_budget_shows_in_status_and_leaves_the_endpoint_ready(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster
) -> None:
    create_azure_secret(kubectl, namespace)
    kubectl.apply(endpoint_manifest(budget={"monthlyUSD": "0.01"}), namespace=namespace)
    wait_condition(kubectl, namespace, "Ready", "True")
    obj = wait_condition(kubectl, namespace, "BudgetExceeded", "False")
    assert condition(obj, "BudgetExceeded")["reason"] == "WithinBudget"
    assert obj["status"]["budget"]["monthUSD"] == "0.000000"
    # What the gateways' once-a-second flushes leave in Redis: micro-USD for this UTC month.
    now = time.time()
    key = spend.month_key(f"{namespace}/chat", now)
    with redis.Redis.from_url(dev_cluster.redis_url) as client:
        client.set(key, 12_500, ex=3600)
    obj = wait_condition(kubectl, namespace, "BudgetExceeded", "True")
    spent = condition(obj, "BudgetExceeded")
    assert spent["reason"] == "MonthlyBudgetSpent"
    assert "0.012500 USD spent in" in spent["message"]
    assert "spec.budget.monthlyUSD 0.010000 USD" in spent["message"]
    assert obj["status"]["budget"] == {
        "month": spend.month_of(now), "monthUSD": "0.012500",
        "limitUSD": "0.010000", "remainingUSD": "0.000000",
    }  # fmt: skip
    assert condition(obj, "Ready")["status"] == "True", "cache hits are still served"
    wide = kubectl.run("get", "rte", "chat", "-n", namespace, "-o", "wide").stdout
    assert "0.012500" in wide


def test_deleted_or_edited_children_are_put_back(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    create_azure_secret(kubectl, namespace)
    kubectl.apply(endpoint_manifest(), namespace=namespace)
    wait_condition(kubectl, namespace, "Ready", "True")
    kubectl.run("delete", "service", "chat-gateway", "-n", namespace)
    kubectl.run("scale", "deployment", "chat-gateway", "--replicas=7", "-n", namespace)
    wait_for(
        lambda: (
            kubectl.run("get", "service", "chat-gateway", "-n", namespace, check=False).returncode
            == 0
        ),
        timeout_s=60,
        what="the Service to come back",
    )
    wait_for(
        lambda: kubectl.get("deployment", "chat-gateway", "-n", namespace)["spec"]["replicas"] == 2,
        timeout_s=60,
        what="the replica count to be reverted",
    )


def test_a_config_change_rolls_the_gateway_pods(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    create_azure_secret(kubectl, namespace)
    kubectl.apply(endpoint_manifest(), namespace=namespace)
    wait_condition(kubectl, namespace, "Ready", "True")

    def config_hash() -> str:
        template = kubectl.get("deployment", "chat-gateway", "-n", namespace)["spec"]["template"]
        return template["metadata"]["annotations"]["tiers.dev/config-hash"]

    before = config_hash()
    kubectl.run(
        "patch",
        "rte",
        "chat",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"cache":{"ttlSeconds":60}}}',
    )
    wait_for(lambda: config_hash() != before, timeout_s=60, what="a new config hash")
    config = json.loads(
        kubectl.get("configmap", "chat-gateway", "-n", namespace)["data"]["gateway.json"]
    )
    assert config["cache"]["ttl_seconds"] == 60

    # Each child the operator made or changed is in an Event on the endpoint.
    expected = {
        ("ChildCreated", "ConfigMap chat-gateway"),
        ("ChildCreated", "Deployment chat-gateway"),
        ("ChildUpdated", "ConfigMap chat-gateway"),
        ("ChildUpdated", "Deployment chat-gateway"),
    }
    wait_for(
        lambda: expected <= child_events(kubectl, namespace, "RealtimeEndpoint"),
        timeout_s=60, what=f"events {expected}",
    )  # fmt: skip


def test_status_agrees_with_what_clients_measured_and_paid(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    services: Processes,
    tmp_path: pathlib.Path,
) -> None:
    """Known traffic through the openai SDK, timed and priced by the test itself (usage times
    gpt-4o-mini's published price, not tiers' price table); status must agree: the request
    count exactly, p95 within 10%, the cost within 1%."""
    # Replies spread evenly from 100 to 300 ms: many samples near p95 on both sides (a heavy tail
    # would leave the 95th of 100 far from its neighbours), and the client's own overhead (the
    # SDK, a busy machine) small beside them.
    mock = services.start(
        "mockllm",
        "tiers.runtime.mockllm",
        "--latency-ms",
        "100",
        "--jitter-ms",
        "200",
        "--seed",
        "7",
    )
    backend = {
        "name": "primary",
        "provider": "openai-compatible",
        "baseURL": f"{mock}/v1",
        "model": "gpt-4o-mini",
    }
    kubectl.apply(endpoint_manifest(backends=[backend]), namespace=namespace)
    wait_condition(kubectl, namespace, "Ready", "True")
    url, gateway = dataplane.start_gateway(
        [str(dev_cluster.kubectl), f"--kubeconfig={dev_cluster.kubeconfig}"],
        namespace=namespace,
        endpoint="chat",
        redis_url=dev_cluster.redis_url,
        work_dir=tmp_path / "gateway",
    )
    requests, distinct = 100, 80  # the last 20 repeat earlier prompts: cache hits
    latencies_ms: list[float] = []
    paid = Decimal(0)
    try:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for i in range(requests):
            asked = [{"role": "user", "content": f"question {i % distinct}"}]
            started = time.perf_counter()
            raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=asked)
            latencies_ms.append((time.perf_counter() - started) * 1000)
            usage = raw.parse().usage
            assert usage is not None
            if raw.headers["x-tiers-cache"] == "miss":  # a hit costs nothing
                # gpt-4o-mini: $0.15 per million prompt tokens, $0.60 per million completion.
                paid += (
                    usage.prompt_tokens * Decimal("0.15")
                    + usage.completion_tokens * Decimal("0.60")
                ) / 10**6

        def reported() -> dict | None:
            status = kubectl.get("rte", "chat", "-n", namespace)["status"]
            return status if status.get("traffic", {}).get("requests", 0) >= requests else None

        status = wait_for(reported, timeout_s=30, what="the traffic in status")
    finally:
        processes.stop(gateway.pid)
    percentiles = statistics.quantiles(latencies_ms, n=100)
    p50, p95 = percentiles[49], percentiles[94]
    assert status["traffic"]["requests"] == requests
    assert status["latency"]["window"] == "5m"
    assert status["latency"]["p95Ms"] == pytest.approx(p95, rel=0.10), (p50, p95, status["latency"])
    assert status["latency"]["p50Ms"] <= status["latency"]["p95Ms"] <= status["latency"]["p99Ms"]
    assert status["cache"]["hitRatio"] == str(Decimal(requests - distinct) / requests)
    assert Decimal(status["cost"]["totalUSD"]) == pytest.approx(paid, rel=Decimal("0.01"))
    assert Decimal(status["cost"]["perRequestUSD"]) == pytest.approx(
        paid / requests, rel=Decimal("0.01")
    )
    columns = kubectl.run("get", "rte", "chat", "-n", namespace).stdout.splitlines()[1].split()
    assert str(status["latency"]["p95Ms"]) in columns and status["cost"]["perRequestUSD"] in columns
