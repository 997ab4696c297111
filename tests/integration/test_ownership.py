"""The operator writes and deletes only its own children: an object that merely has a child's
name (someone else's Deployment, ConfigMap or Job) is reported as `ChildConflict`, left as it
was, and survives the custom resource."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import yaml
from conftest import Kubectl, wait_for

from tiers import devenv
from tiers.devenv import samples
from tiers.operator.manifests import batch_children, labels

FOREIGN_IMAGE = "registry.invalid/someone-else:1"


def foreign_deployment(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"team": "other"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": FOREIGN_IMAGE}]},
                },
            },
        }
    )


def endpoint(**spec: Any) -> str:
    return json.dumps(samples.realtime_endpoint(**spec))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = obj.get("status", {}).get("conditions", [])
    return next((c for c in found if c["type"] == type_), {})


def wait_reason(
    kubectl: Kubectl, namespace: str, kind: str, name: str, type_: str, reason: str
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = condition(kubectl.get(kind, name, "-n", namespace), type_)
        return found if found.get("reason") == reason else None

    result: dict[str, Any] = wait_for(reached, timeout_s=30, what=f"{type_} reason {reason}")
    return result


def assert_untouched(kubectl: Kubectl, namespace: str, name: str) -> None:
    deployment = kubectl.get("deployment", name, "-n", namespace)
    assert not deployment["metadata"].get("ownerReferences")
    assert deployment["metadata"]["labels"] == {"team": "other"}
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == [FOREIGN_IMAGE]


def test_a_deployment_that_has_the_gateways_name_is_reported_and_never_adopted(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(foreign_deployment("chat-gateway"), namespace=namespace)
    kubectl.apply(endpoint(), namespace=namespace)

    proxy = wait_reason(kubectl, namespace, "rte", "chat", "ProxyReady", "ChildConflict")

    assert proxy["status"] == "False"
    assert "Deployment chat-gateway" in proxy["message"]
    assert condition(kubectl.get("rte", "chat", "-n", namespace), "Ready")["status"] == "False"
    assert_untouched(kubectl, namespace, "chat-gateway")
    # Deleting the endpoint leaves the Deployment, which was never its child.
    kubectl.run("delete", "rte", "chat", "-n", namespace, "--wait=true", "--timeout=30s")
    assert_untouched(kubectl, namespace, "chat-gateway")


def test_an_endpoint_without_redis_leaves_an_unrelated_redis_of_its_name_alone(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(foreign_deployment("chat-redis"), namespace=namespace)
    # No cache, no limit, no budget: the endpoint needs no Redis, so `chat-redis` is a child
    # it would delete if it were one.
    kubectl.apply(endpoint(cache={"enabled": False}), namespace=namespace)

    def applied() -> bool:
        found = kubectl.run("get", "deployment", "chat-gateway", "-n", namespace, check=False)
        return found.returncode == 0

    wait_for(applied, timeout_s=30, what="the gateway Deployment")
    obj = wait_for(
        lambda: (found := kubectl.get("rte", "chat", "-n", namespace)).get("status") and found,
        timeout_s=30,
        what="the endpoint's status",
    )
    assert condition(obj, "ProxyReady").get("reason") != "ChildConflict"
    assert_untouched(kubectl, namespace, "chat-redis")


def test_a_job_that_has_a_batch_runs_name_is_a_conflict_not_a_silent_skip(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    run_name = batch_children.one_off_run_name(labels.Ref("nightly", namespace))
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run_name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": FOREIGN_IMAGE}],
                }
            }
        },
    }
    kubectl.apply(json.dumps(job), namespace=namespace)
    batch = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "engine": "spark",
            "input": {"uri": "file:///tmp/in/tickets.jsonl"},
            "output": {"uri": "file:///tmp/out", "format": "jsonl"},
            "model": {
                "backend": {
                    "name": "mock",
                    "provider": "openai-compatible",
                    "baseURL": "http://127.0.0.1:9/v1",
                    "model": "gpt-4o-mini",
                },
                "prompt": "Classify this ticket: {text}",
            },
        },
    }
    kubectl.apply(yaml.safe_dump(batch), namespace=namespace)

    succeeded = wait_reason(kubectl, namespace, "bjob", "nightly", "Succeeded", "ChildConflict")

    assert f"Job {run_name}" in succeeded["message"]
    found = kubectl.get("job", run_name, "-n", namespace)
    assert not found["metadata"].get("ownerReferences")
    assert found["spec"]["template"]["spec"]["containers"][0]["image"] == FOREIGN_IMAGE


def test_a_deployment_that_has_the_stream_jobs_name_is_reported_and_never_adopted(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster
) -> None:
    kubectl.apply(foreign_deployment("summaries-stream"), namespace=namespace)
    suffix = uuid.uuid4().hex[:8]
    pipeline = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "StreamPipeline",
        "metadata": {"name": "summaries"},
        "spec": {
            "kafka": {"bootstrapServers": dev_cluster.kafka_bootstrap},
            "topics": {
                "input": {"name": f"in-{suffix}"},
                "output": {"name": f"out-{suffix}"},
                "deadLetter": {"name": f"dlq-{suffix}"},
            },
            "model": {
                "backend": {
                    "name": "mock",
                    "provider": "openai-compatible",
                    "baseURL": "http://127.0.0.1:9/v1",
                    "model": "gpt-4o-mini",
                },
                "prompt": "Summarize: {text}",
            },
            "checkpoint": {"volumeSize": "1Gi"},
        },
    }
    kubectl.apply(json.dumps(pipeline), namespace=namespace)

    streaming = wait_reason(
        kubectl, namespace, "spipe", "summaries", "StreamingReady", "ChildConflict"
    )

    assert "Deployment summaries-stream" in streaming["message"]
    assert_untouched(kubectl, namespace, "summaries-stream")


def test_an_endpoint_deleted_and_applied_again_at_once_waits_for_its_old_children_to_go(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    """`kubectl delete` then `apply` (as `kubectl replace --force` or an Argo CD sync with
    Replace=true do): the old endpoint's ConfigMap, held here by a finalizer as a slow garbage
    collection would, keeps its name while the new endpoint exists. The new one waits for it,
    never reports a ChildConflict (Stalled), and is Ready soon after it has gone, well before the
    periodic re-check (60 s)."""
    manifest = endpoint(cache={"enabled": False})
    kubectl.apply(manifest, namespace=namespace)

    def rte() -> dict[str, Any]:
        return kubectl.get("rte", "chat", "-n", namespace)  # type: ignore[no-any-return]

    first = wait_for(
        lambda: condition(found := rte(), "Ready").get("status") == "True" and found,
        timeout_s=30, what="the endpoint to be Ready",
    )  # fmt: skip
    kubectl.run("patch", "configmap", "chat-gateway", "-n", namespace, "--type=merge",
                "-p", '{"metadata": {"finalizers": ["tiers.dev/test-holds-it"]}}')  # fmt: skip
    try:
        kubectl.run("delete", "rte", "chat", "-n", namespace, "--wait=false")
        kubectl.apply(manifest, namespace=namespace)
        seen: set[tuple[str, str]] = set()

        def waiting() -> dict[str, Any] | None:
            found = rte()
            seen.update((c["type"], c["reason"]) for c in found.get("status", {}).get(
                "conditions", []) if c["type"] in ("ProxyReady", "Stalled") and c["status"] != "Unknown")  # fmt: skip
            proxy = condition(found, "ProxyReady")
            new = found["metadata"]["uid"] != first["metadata"]["uid"]
            return found if new and proxy.get("reason") == "PreviousObjectDeleting" else None

        found = wait_for(waiting, timeout_s=60, what="the new endpoint to wait for the old child")
        ready = condition(found, "Ready")
        assert (ready["status"], ready["reason"]) == ("Unknown", "PreviousObjectDeleting")
        assert ready["message"].startswith(
            "ProxyReady: waiting: ConfigMap chat-gateway of the RealtimeEndpoint of this name"
        )
        assert condition(found, "Reconciling")["status"] == "True"
        assert condition(found, "Stalled")["status"] == "False"
        old = kubectl.get("configmap", "chat-gateway", "-n", namespace)
        assert old["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
        wait_for(
            lambda: kubectl.get("configmap", "chat-gateway", "-n", namespace)["metadata"].get(
                "deletionTimestamp"), timeout_s=60, what="the garbage collector to delete it",
        )  # fmt: skip
    finally:
        kubectl.run("patch", "configmap", "chat-gateway", "-n", namespace, "--type=json",
                    "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')  # fmt: skip
    freed = time.monotonic()

    def ready_again() -> dict[str, Any] | None:
        found = rte()
        seen.update((c["type"], c["reason"]) for c in found.get("status", {}).get(
            "conditions", []) if c["type"] in ("ProxyReady", "Stalled") and c["status"] != "Unknown")  # fmt: skip
        return found if condition(found, "Ready").get("status") == "True" else None

    found = wait_for(ready_again, timeout_s=30, what="the new endpoint to be Ready")
    assert time.monotonic() - freed < 30, "sooner than the periodic re-check"
    assert ("ProxyReady", "ChildConflict") not in seen and ("Stalled", "ChildConflict") not in seen
    config = kubectl.get("configmap", "chat-gateway", "-n", namespace)
    assert config["metadata"]["ownerReferences"][0]["uid"] == found["metadata"]["uid"]
