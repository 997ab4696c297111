"""Every example applies, and the operator reports on it within 30 s (a bound for a busy CI
machine, where the session's operator also re-checks every other test's objects; the
operator's own latency is measured in bench/)."""

from __future__ import annotations

import pathlib
import urllib.request

import pytest
import yaml
from conftest import Kubectl, wait_for

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
PRIMARY = {"RealtimeEndpoint": "Ready", "StreamPipeline": "Ready", "BatchJob": "Succeeded"}


def example_files() -> list[pathlib.Path]:
    return sorted(EXAMPLES.glob("[0-9][0-9]-*/*.yaml"))


def condition(obj: dict, type_: str) -> dict | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None
    )


@pytest.mark.parametrize("path", example_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_is_accepted_and_reconciled(
    path: pathlib.Path, kubectl: Kubectl, operator_log: pathlib.Path, namespace: str
) -> None:
    # The session's operator runs as the chart's ServiceAccount (a TokenRequest token): what it
    # logs while reconciling the example says whether the chart's RBAC let it do all of it.
    logged_before = operator_log.stat().st_size
    kubectl.run("apply", "-n", namespace, "-f", str(path))
    for document in yaml.safe_load_all(path.read_text()):
        kind, name = document["kind"], document["metadata"]["name"]

        def reconciled(kind: str = kind, name: str = name) -> dict | None:
            obj = kubectl.get(kind.lower(), name, "-n", namespace)
            if obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]:
                return obj
            return None

        obj = wait_for(reconciled, timeout_s=30, what=f"{kind}/{name} to be reconciled")
        primary = condition(obj, PRIMARY[kind])
        assert primary is not None
        assert primary["observedGeneration"] == obj["metadata"]["generation"]
        if kind == "RealtimeEndpoint":
            assert obj["status"]["url"].startswith(f"http://{name}-gateway.{namespace}.svc")
            assert primary["reason"] != "InvalidSpec"
        elif kind == "StreamPipeline":
            # The example's brokers are an in-cluster name that does not resolve here.
            topics = condition(obj, "TopicsReady")
            assert topics is not None and topics["reason"] == "KafkaUnavailable"
        elif document["spec"]["engine"] == "databricks":
            # The workspace's token is a Secret the example does not make: it says so.
            assert (primary["status"], primary["reason"]) == ("False", "SecretNotFound")
            assert "spec.databricks.tokenSecretRef" in primary["message"]
        else:  # The example's endpoint is not in this namespace: the job waits for it, saying so.
            assert (primary["status"], primary["reason"]) == ("False", "EndpointNotFound")
            assert "RealtimeEndpoint chat" in primary["message"]
        assert not any(key.startswith("kopf") for key in obj["status"]), "no kopf clutter in status"
        assert not any("kopf.zalando.org" in key for key in obj["metadata"].get("annotations", {}))
    with operator_log.open("rb") as log:
        log.seek(logged_before)
        logged = log.read().decode(errors="replace")
    # Lines about this namespace only: other tests' namespaces being deleted refuse Events with
    # a 403 of their own (admission's, not RBAC's).
    refused = [line for line in logged.splitlines()
               if namespace in line and "forbidden" in line.lower()]  # fmt: skip
    assert refused == [], "the chart's RBAC refused the operator"


def test_kubectl_get_tiers_lists_all_three_kinds(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    for path in example_files():
        kubectl.run("apply", "-n", namespace, "-f", str(path))
    listed = kubectl.run("get", "tiers", "-n", namespace, "-o", "name").stdout.split()
    kinds = {entry.split("/")[0].split(".")[0] for entry in listed}
    assert kinds == {"realtimeendpoint", "streampipeline", "batchjob"}


def test_printer_columns_show_readiness_and_cost(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(EXAMPLES / "01-realtime"))
    wait_for(
        lambda: "chat-gateway" in kubectl.run("get", "rte", "chat", "-n", namespace).stdout,
        timeout_s=30,
        what="the URL column",
    )
    header = kubectl.run("get", "rte", "-n", namespace).stdout.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "URL", "P95", "COST/REQ"]


def test_a_spec_change_is_observed_at_its_new_generation(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(EXAMPLES / "01-realtime"))
    kubectl.run(
        "patch", "rte", "chat", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":5}}'
    )
    obj = wait_for(
        lambda: (
            (o := kubectl.get("rte", "chat", "-n", namespace))
            .get("status", {})
            .get("observedGeneration")
            == 2
            and o
        ),
        timeout_s=30,
        what="observedGeneration 2",
    )
    assert condition(obj, "Ready")["observedGeneration"] == 2


def test_the_operator_exports_reconcile_metrics(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    def reconciles() -> float:
        with urllib.request.urlopen(operator, timeout=2) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('tiers_reconciles_total{kind="BatchJob",outcome="success"}')
        )

    # Counted from now: the session's operator has reconciled other tests' BatchJobs before (or
    # none at all, where this module runs first), and the example's three each reconcile.
    before = reconciles()
    kubectl.run("apply", "-n", namespace, "-f", str(EXAMPLES / "03-batch"))
    wait_for(
        lambda: reconciles() - before >= 3, timeout_s=30, what="the examples' BatchJob reconciles"
    )
