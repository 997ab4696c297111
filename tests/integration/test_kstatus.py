"""kstatus (sigs.k8s.io/cli-utils, what `kubectl wait`, Flux and Argo CD's checks build on) reads
each kind's status right: InProgress while the operator works or has not seen the latest spec,
Failed when only the user can help, Current once Ready (or Succeeded, or resting: suspended,
waiting for its schedule). The real library runs on the objects (`tools/kstatus`)."""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
from typing import Any

import pytest
import yaml
from conftest import Kubectl, wait_for

from tiers.devenv import toolchain
from tiers.operator import verdicts

NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
SAMPLES = pathlib.Path(__file__).parents[2] / "examples/argocd/resource_customizations/tiers.dev"
# Argo CD's health (the samples' name prefix) and what kstatus says of the same object.
AS_KSTATUS = {"healthy": "Current", "progressing": "InProgress", "degraded": "Failed"}
KSTATUS_DIFFERS = {
    # Kafka comes back by itself: Flux keeps waiting (InProgress), Argo CD shows it Degraded.
    "StreamPipeline/degraded_kafka_unavailable": "InProgress",
    # Before the operator writes any status, kstatus cannot tell a Tiers object from one
    # without conditions: it reads it as Current.
    "RealtimeEndpoint/progressing_no_status": "Current",
    "StreamPipeline/progressing_no_status": "Current",
    "BatchJob/progressing_no_status": "Current",
    # kstatus has no Suspended: a stopped gateway or job is not Ready, a suspended BatchJob is
    # as its spec asks.
    "RealtimeEndpoint/suspended": "InProgress",
    "StreamPipeline/suspended": "InProgress",
    "BatchJob/suspended": "Current",
}
KINDS = {"Ready": ("RealtimeEndpoint", "StreamPipeline"), "Succeeded": ("BatchJob",)}


@pytest.fixture(scope="module")
def kstatus() -> pathlib.Path:
    return toolchain.ensure_built(toolchain.KSTATUS) / "kstatus"


def computed(kstatus: pathlib.Path, *objects: dict[str, Any]) -> list[str]:
    done = subprocess.run(
        [str(kstatus)],
        input="\n".join(json.dumps(obj) for obj in objects),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [json.loads(line)["status"] for line in done.stdout.splitlines()]


def stamped(kind: str, primary: str, verdict: verdicts.Verdict, *, generation: int = 2) -> Any:
    obj = {"apiVersion": "tiers.dev/v1alpha1", "kind": kind, "metadata": {"generation": 2}}
    obj["metadata"]["name"] = kind.lower()
    status = verdicts.stamp(
        {**obj, "metadata": {"generation": generation}}, {primary: verdict}, now=NOW
    )
    return {**obj, "status": status}


@pytest.mark.parametrize(
    ("primary", "verdict", "expected"),
    [
        ("Ready", verdicts.Verdict("True", "Ready", "ready"), "Current"),
        ("Ready", verdicts.Verdict("Unknown", "Creating", "being made"), "InProgress"),
        ("Ready", verdicts.Verdict("False", "Unavailable", "no pod yet"), "InProgress"),
        ("Ready", verdicts.Verdict("False", "KafkaUnavailable", "retrying"), "InProgress"),
        ("Ready", verdicts.Verdict("False", "InvalidSpec", "spec.x: bad"), "Failed"),
        ("Ready", verdicts.Verdict("False", "ChildConflict", "taken"), "Failed"),
        ("Ready", verdicts.Verdict("False", "SecretNotFound", "missing"), "Failed"),
        ("Ready", verdicts.Verdict("False", "Failed", "the SparkApplication failed"), "Failed"),
        ("Succeeded", verdicts.Verdict("True", "Succeeded", "done"), "Current"),
        ("Succeeded", verdicts.Verdict("Unknown", "Running", "scoring"), "InProgress"),
        ("Succeeded", verdicts.Verdict("Unknown", "Pending", "not started"), "InProgress"),
        ("Succeeded", verdicts.Verdict("Unknown", "Suspended", "suspended"), "Current"),
        ("Succeeded", verdicts.Verdict("Unknown", "Scheduled", "due at 3"), "Current"),
        ("Succeeded", verdicts.Verdict("False", "BackoffLimitExceeded", "failed"), "Failed"),
    ],
)
def test_kstatus_reads_each_verdict_as_meant(
    kstatus: pathlib.Path, primary: str, verdict: verdicts.Verdict, expected: str
) -> None:
    objects = [stamped(kind, primary, verdict) for kind in KINDS[primary]]
    assert computed(kstatus, *objects) == [expected] * len(objects)


def test_a_spec_not_yet_observed_is_in_progress_whatever_the_conditions(
    kstatus: pathlib.Path,
) -> None:
    ready = verdicts.Verdict("True", "Ready", "ready")
    assert computed(kstatus, stamped("RealtimeEndpoint", "Ready", ready, generation=1)) == [
        "InProgress"
    ]


def test_kstatus_agrees_with_the_argo_cd_health_checks_on_their_samples(
    kstatus: pathlib.Path,
) -> None:
    samples = sorted(SAMPLES.glob("*/testdata/*.yaml"))
    assert len(samples) > 30
    found = computed(kstatus, *(yaml.safe_load(path.read_text()) for path in samples))
    names = [f"{path.parents[1].name}/{path.stem}" for path in samples]
    expected = [
        KSTATUS_DIFFERS.get(name) or AS_KSTATUS[name.split("/")[1].split("_")[0]] for name in names
    ]
    assert dict(zip(names, found, strict=True)) == dict(zip(names, expected, strict=True))


def endpoint(name: str, **spec: Any) -> dict[str, Any]:
    backend = {
        "name": "primary", "provider": "openai-compatible", "baseURL": "http://127.0.0.1:9/v1",
        "model": "gpt-4o-mini",
    }  # fmt: skip
    return {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "RealtimeEndpoint",
        "metadata": {"name": name},
        "spec": {"model": "gpt-4o-mini", "backends": [{**backend, **spec}]},
    }


def test_objects_from_the_apiserver_read_current_and_failed(
    kubectl: Kubectl, operator: str, namespace: str, kstatus: pathlib.Path
) -> None:
    good = endpoint("good")
    keyless = endpoint("keyless", apiKeySecretRef={"name": "absent", "key": "token"})
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [good, keyless]}),
                  namespace=namespace)  # fmt: skip

    def judged() -> dict[str, str] | None:
        listed = kubectl.get("rte", "-n", namespace)
        verdict = dict(zip(["good", "keyless"], computed(kstatus, *sorted(
            listed["items"], key=lambda item: item["metadata"]["name"]
        )), strict=True))  # fmt: skip
        return verdict if verdict == {"good": "Current", "keyless": "Failed"} else None

    wait_for(judged, timeout_s=60, what="kstatus Current and Failed", interval_s=1)
    done = kubectl.run(
        "wait", "--for=condition=Stalled", "rte/keyless", "-n", namespace, "--timeout=5s"
    )
    assert "condition met" in done.stdout
