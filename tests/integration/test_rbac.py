"""The operator's RBAC is exactly what it does. The session's operator runs as the chart's
ServiceAccount with the chart's rendered roles (conftest `operator_kubeconfig`), and the local
apiserver writes an audit log of every request a ServiceAccount makes. Here one object of each
kind goes through the life that reaches every request the operator makes; then the requests in
the audit log are compared with the rules the chart grants, both ways: nothing refused, nothing
used that is not granted, nothing granted that is not used."""

from __future__ import annotations

import datetime
import json
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import (
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    RBAC_TEMPLATES,
    Kubectl,
    render_chart,
    wait_for,
)

from tiers import devenv
from tiers.devenv import samples

Access = tuple[str, str, str]
"""(API group, resource[/subresource], verb), as RBAC rules and audit events both name them."""

NOT_EXERCISED_HERE: set[Access] = {
    # A StreamPipeline is read by name only when a child's name is held by the child of a
    # deleted pipeline of its name (deleted and applied again at once: kube.conflict).
    ("tiers.dev", "streampipelines", "get"),
    # An endpoint's Secret of its callers' key digests, server-side applied once a pipeline or
    # batch job calls an endpoint with auth (issue 14, item 5); this life has no such caller.
    ("", "secrets", "patch"),
    # A run's Job is read only when its name is already taken, to tell the BatchJob's own run
    # from someone else's Job (ChildConflict; the ownership tests make one).
    ("batch", "jobs", "get"),
    # A BatchJob's runs as SparkApplications (spark.mode: spark-operator) are listed and stopped
    # like its Jobs; test_batch_operator's Spark Operator test runs one.
    ("sparkoperator.k8s.io", "sparkapplications", "list"),
    ("sparkoperator.k8s.io", "sparkapplications", "delete"),
    # An endpoint's HTTPRoute (spec.expose.httpRoute) needs the Gateway API's CRDs, which
    # test_exposure.py installs; here the operator only looks for one to delete (get).
    ("gateway.networking.k8s.io", "httproutes", "create"),
    ("gateway.networking.k8s.io", "httproutes", "patch"),
    ("gateway.networking.k8s.io", "httproutes", "delete"),
    # The BackendTLSPolicy of an HTTPRoute to a gateway with tls needs the Gateway API's CRD of
    # it, which test_exposure.py installs; here the cluster serves no such kind.
    ("gateway.networking.k8s.io", "backendtlspolicies", "get"),
    ("gateway.networking.k8s.io", "backendtlspolicies", "create"),
    ("gateway.networking.k8s.io", "backendtlspolicies", "patch"),
    ("gateway.networking.k8s.io", "backendtlspolicies", "delete"),
    # A gateway's cert-manager Certificate (spec.tls.issuerRef) needs cert-manager's CRD, which
    # test_tls_operator.py installs; here the operator only looks for one to delete (get).
    ("cert-manager.io", "certificates", "create"),
    ("cert-manager.io", "certificates", "patch"),
    ("cert-manager.io", "certificates", "delete"),
}
"""Granted, and used by the operator, but not in the life below: each with why."""
HELD_TO_GRANT: set[Access] = {
    # The Role of a gateway with the Batch API lets it get, list, create and patch BatchJobs;
    # the apiserver lets the operator write that Role only while it holds those verbs itself.
    ("tiers.dev", "batchjobs", "get"),
    ("tiers.dev", "batchjobs", "create"),
}
"""Granted so that the operator may grant them, never called by the operator itself."""

BACKEND = {
    "name": "mock",
    "provider": "openai-compatible",
    "baseURL": "http://127.0.0.1:9/v1",
    "model": "gpt-4o-mini",
    "apiKeySecretRef": {"name": "upstream", "key": "api-key"},
}


def granted_rules(documents: list[dict[str, Any]]) -> set[Access]:
    """Every (group, resource, verb) the rendered Roles and ClusterRoles allow."""
    granted = set()
    for doc in documents:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.update((group, resource, verb) for verb in rule["verbs"])
    return granted


def chart_grants() -> set[Access]:
    rendered = render_chart(*(f"--show-only={template}" for template in RBAC_TEMPLATES))
    return granted_rules([doc for doc in yaml.safe_load_all(rendered) if doc])


def operator_requests(audit_log: pathlib.Path) -> list[dict[str, Any]]:
    """The operator's requests on API resources (discovery, which every account may read, left
    out), one entry per answered request."""
    found = []
    with audit_log.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event["user"]["username"] != OPERATOR_USER or "objectRef" not in event:
                continue
            if event["stage"] == "ResponseComplete" or event["verb"] == "watch":
                found.append(event)
    return found


def accesses(event: dict[str, Any]) -> set[Access]:
    """What one request needed: a server-side apply that created its object (201) needed
    `create` as well as `patch` (the apiserver checks both)."""
    ref = event["objectRef"]
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    needed = {(ref.get("apiGroup", ""), resource, event["verb"])}
    if event["verb"] == "patch" and event.get("responseStatus", {}).get("code") == 201:
        needed.add((ref.get("apiGroup", ""), resource, "create"))
    return needed


def used(audit_log: pathlib.Path) -> set[Access]:
    return set().union(*(accesses(event) for event in operator_requests(audit_log)))


def refused(audit_log: pathlib.Path) -> list[str]:
    """The operator's requests that RBAC refused (not those an admission plugin turned away,
    such as an Event posted into a namespace being deleted)."""
    return sorted(
        {
            f"{event['verb']} {event['requestURI']}"
            for event in operator_requests(audit_log)
            if event.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"
        }
    )


def status(kubectl: Kubectl, kind: str, name: str, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.get(kind, name, "-n", namespace).get("status", {})
    return found


def exists(kubectl: Kubectl, kind: str, name: str, namespace: str) -> bool:
    out = kubectl.run("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name")
    return bool(out.stdout.strip())


def live_a_realtime_endpoint(kubectl: Kubectl, namespace: str) -> None:
    """Everything an endpoint's life asks of the apiserver: its children applied (a managed
    Redis, its NetworkPolicy, an HPA, the Batch API's ServiceAccount, Role and RoleBinding), its
    Secret and Deployments read, then the optional children deleted once the spec no longer
    wants them."""
    endpoint = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "RealtimeEndpoint",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "gpt-4o-mini",
            "backends": [BACKEND],
            "cache": {"ttlSeconds": 60},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
            "expose": {"host": "chat.example.com", "ingress": {}},
            "batch": {"storage": {"claimName": "batches"}},
        },
    }
    kubectl.apply(json.dumps(endpoint), namespace=namespace)
    wait_for(
        lambda: (
            exists(kubectl, "hpa", "chat-gateway", namespace)
            and exists(kubectl, "networkpolicy", "chat-redis", namespace)
            and exists(kubectl, "ingress", "chat-gateway", namespace)
            and exists(kubectl, "rolebinding", "chat-gateway", namespace)
        ),
        timeout_s=60,
        what="the endpoint's autoscaler, Ingress, its Redis's NetworkPolicy and the gateway's Role",
    )
    endpoint["spec"] = {"model": "gpt-4o-mini", "backends": [BACKEND], "cache": {"enabled": False}}
    kubectl.apply(json.dumps(endpoint), namespace=namespace)
    wait_for(
        lambda: (
            not exists(kubectl, "hpa", "chat-gateway", namespace)
            and not exists(kubectl, "ingress", "chat-gateway", namespace)
            and not exists(kubectl, "deployment", "chat-redis", namespace)
            and not exists(kubectl, "networkpolicy", "chat-redis", namespace)
            and not exists(kubectl, "role", "chat-gateway", namespace)
            and not exists(kubectl, "serviceaccount", "chat-gateway", namespace)
        ),
        timeout_s=60,
        what="the autoscaler, Ingress, Redis, NetworkPolicy and the gateway's Role to be deleted",
    )


def pipeline(bootstrap: str, name: str, **spec: Any) -> str:
    topics = samples.topic_names("rbac-", f"-{uuid.uuid4().hex[:8]}")
    return json.dumps(samples.stream_pipeline(
        name, bootstrap=bootstrap, topics=topics, partitions=None,
        model={"endpointRef": {"name": "chat"}, "prompt": "Summarize: {text}"}, **spec,
    ))  # fmt: skip


def live_stream_pipelines(kubectl: Kubectl, namespace: str, bootstrap: str) -> None:
    """A pipeline on a Deployment (its checkpoint claim, push gateway and its NetworkPolicy, the
    endpoint it calls read), and one on the Spark Operator (its SparkApplication applied and
    read)."""
    kubectl.apply(pipeline(bootstrap, "summaries"), namespace=namespace)
    kubectl.apply(pipeline(bootstrap, "on-spark", engine="spark-operator"), namespace=namespace)
    wait_for(
        lambda: (
            exists(kubectl, "networkpolicy", "summaries-push", namespace)
            and exists(kubectl, "deployment", "summaries-stream", namespace)
            and exists(kubectl, "sparkapplication", "on-spark-stream", namespace)
        ),
        timeout_s=90,
        what="the pipelines' jobs, SparkApplication and push gateway policy",
    )
    wait_for(
        lambda: status(kubectl, "spipe", "on-spark", namespace).get("observedGeneration"),
        timeout_s=30,
        what="the Spark Operator pipeline's status",
    )


def live_a_scheduled_batch_job(kubectl: Kubectl, namespace: str) -> None:
    """A scheduled BatchJob whose missed run is made at once (the time injected through
    status.lastScheduleTime), finishes (kwok completes its pod), is announced by an Event and,
    with no history kept, is deleted."""
    job = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "triage"},
        "spec": {
            "engine": "spark",
            "schedule": "*/5 * * * *",
            "successfulRunsHistoryLimit": 0,
            "failedRunsHistoryLimit": 0,
            "input": {"uri": "file:///tmp/tiers-rbac/in.jsonl"},
            "output": {"uri": "file:///tmp/tiers-rbac/out"},
            "model": {"endpointRef": {"name": "chat"}, "prompt": "Classify: {text}"},
        },
    }
    kubectl.apply(json.dumps(job), namespace=namespace)
    wait_for(
        lambda: status(kubectl, "bjob", "triage", namespace).get("nextRun"),
        timeout_s=30,
        what="the next run to be planned",
    )
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    kubectl.run(
        "patch", "bjob", "triage", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"lastScheduleTime": past.strftime("%Y-%m-%dT%H:%M:%SZ")}}),
    )  # fmt: skip
    wait_for(
        lambda: any(
            event["involvedObject"].get("name") == "triage"
            for event in kubectl.get("events", "-n", namespace)["items"]
        ),
        timeout_s=60,
        what="an Event about the BatchJob",
    )
    stamp = past.strftime("%Y-%m-%dT%H:%M:%SZ")
    wait_for(
        lambda: (
            status(kubectl, "bjob", "triage", namespace).get("lastScheduleTime", "") > stamp
            and not kubectl.get("jobs", "-n", namespace)["items"]
        ),
        timeout_s=60,
        what="the run to be made, and its Job deleted once finished (no history kept)",
    )


@pytest.fixture
def audit_log(dev_cluster: devenv.DevCluster) -> pathlib.Path:
    return dev_cluster.audit_log


@pytest.fixture
def upstream_secret(kubectl: Kubectl, namespace: str) -> Iterator[None]:
    kubectl.run(
        "create", "secret", "generic", "upstream", "-n", namespace, "--from-literal=api-key=sk-x"
    )
    yield


def test_the_operator_does_exactly_what_the_charts_rbac_grants(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    audit_log: pathlib.Path,
    upstream_secret: None,
    spark_operator_crd: None,
) -> None:
    try:
        live_a_realtime_endpoint(kubectl, namespace)
        live_stream_pipelines(kubectl, namespace, dev_cluster.kafka_bootstrap)
        live_a_scheduled_batch_job(kubectl, namespace)
    except AssertionError as error:
        # A refused request is the likeliest reason a step never came: say which.
        conditions = {
            kind: [c for obj in kubectl.get(kind, "-n", namespace)["items"]
                   for c in obj.get("status", {}).get("conditions", [])]
            for kind in ("rte", "spipe", "bjob")
        }  # fmt: skip
        raise AssertionError(
            f"{error}\nrefused: {refused(audit_log)}\nconditions: {conditions}"
        ) from None

    assert refused(audit_log) == [], "the chart's RBAC refused the operator these requests"
    granted = chart_grants()
    # A wildcard would also show below as granted and never used; said first, by name.
    assert [access for access in granted if "*" in access] == [], "the chart grants a wildcard"
    ungranted = sorted(used(audit_log) - granted)
    assert ungranted == [], "the operator made requests the chart does not grant"
    # What the chart grants and the operator never asked for is a door left open.
    unused = sorted(granted - used(audit_log) - NOT_EXERCISED_HERE - HELD_TO_GRANT)
    assert unused == [], "the chart grants what the operator never uses"


def test_the_operator_reads_secrets_one_by_one_and_only_where_it_works(
    operator: str, audit_log: pathlib.Path
) -> None:
    secrets = [e for e in operator_requests(audit_log) if e["objectRef"]["resource"] == "secrets"]
    # get: a referenced key; create: a generated password or key; patch: an endpoint's Secret of
    # its callers' key digests (server-side applied), a self-signed certificate renewed. Never
    # list, watch, update or delete.
    assert {e["verb"] for e in secrets} <= {"get", "create", "patch"}
    assert all(e["objectRef"].get("name") for e in secrets)
    leases = [e for e in operator_requests(audit_log) if e["objectRef"]["resource"] == "leases"]
    assert {e["objectRef"]["namespace"] for e in leases} <= {OPERATOR_NAMESPACE}


def test_a_namespaced_install_grants_the_same_rules_in_each_watched_namespace_only(
    kubectl: Kubectl, namespace: str
) -> None:
    other = f"{namespace}-b"
    kubectl.run("create", "namespace", other)
    try:
        release = f"ns-{uuid.uuid4().hex[:6]}"
        rendered = [
            doc
            for doc in yaml.safe_load_all(
                render_chart(
                    "--set", f"watchNamespaces={{{namespace},{other}}}",
                    "--set", f"fullnameOverride={release}",
                    *(f"--show-only={template}" for template in (
                        "templates/operator-serviceaccount.yaml",
                        "templates/operator-role.yaml",
                        "templates/operator-rolebinding.yaml",
                        "templates/leader-election-role.yaml",
                        "templates/operator-deployment.yaml",
                    )),
                )
            )
            if doc
        ]  # fmt: skip
        kinds = [(doc["kind"], doc["metadata"].get("namespace")) for doc in rendered]
        assert ("Role", namespace) in kinds and ("Role", other) in kinds
        roles = [
            doc
            for doc in rendered
            if doc["kind"] == "Role" and "leader" not in doc["metadata"]["name"]
        ]
        assert (
            granted_rules(roles[:1])
            == granted_rules(roles[1:])
            == chart_grants()
            - {
                ("apiextensions.k8s.io", "customresourcedefinitions", verb)
                for verb in ("list", "watch")
            }
            - {("coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update")}
        )
        (deployment,) = [doc for doc in rendered if doc["kind"] == "Deployment"]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args == [f"--namespace={namespace}", f"--namespace={other}"]
        no_cluster_role = render_chart("--set", f"watchNamespaces={{{namespace}}}")
        assert "kind: ClusterRole" not in no_cluster_role
    finally:
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)
