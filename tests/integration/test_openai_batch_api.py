"""OpenAI's Batch API on a RealtimeEndpoint with `spec.batch`, driven by the real `openai` SDK:
files uploaded to the gateway, each batch a BatchJob that the gateway creates with its own
ServiceAccount's token (the Role the operator rendered for it, nothing more), run by the real
operator and scored by the real batch job on local Spark through the endpoint; the batch read
back as OpenAI's object, its output and error files downloaded, another batch cancelled mid-run.

No Spark Operator runs here, and kwok runs no containers: `devenv.local_spark` plays the Spark
Operator for the batches' SparkApplications, running each one's command as a local process
with the config and key its driver pod would get, and writing the state the Spark Operator
would write; it stops the process when the operator deletes the application (a cancel).
"""

from __future__ import annotations

import base64
import json
import pathlib
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from conftest import Kubectl, Processes, wait_for

from tiers import devenv
from tiers.devenv import dataplane, local_spark
from tiers.operator.manifests import gateway as gateway_manifests
from tiers.operator.manifests import labels

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"
LINES = [
    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}],
              "max_tokens": 8}},
    {"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say bye"}],
              "max_tokens": 8}},
    # A model the endpoint does not serve: this line fails (the error file), not the batch.
    {"custom_id": "r3", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-unknown", "messages": [{"role": "user", "content": "Say what"}]}},
]  # fmt: skip


def secret_data(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    found = kubectl.run("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    data = json.loads(found.stdout).get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def accepted(gateway: str, key: str) -> bool:
    request = urllib.request.Request(
        gateway + "/v1/models", headers={"authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


@pytest.fixture
def endpoint(
    kubectl: Kubectl, operator: str, namespace: str, services: Processes,
    spark_operator_crd: None,
) -> dict[str, Any]:  # fmt: skip
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    kubectl.run("create", "secret", "generic", "callers", "-n", namespace,
                f"--from-literal=alice={ALICE}", f"--from-literal=bob={BOB}")  # fmt: skip
    manifest = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "gpt-4o-mini",
            "backends": [{"name": "mock", "provider": "openai-compatible",
                          "baseURL": f"{mock}/v1", "model": "gpt-4o-mini"}],
            "cache": {"enabled": False},
            "auth": {"apiKeysSecretRef": {"name": "callers"}},
            "batch": {
                "storage": {"claimName": "batches"},
                "maxFileMB": 1,
                "spark": {"mode": "spark-operator", "executors": 1, "executorCores": 2,
                          "executorMemory": "2Gi"},
            },
        },
    }  # fmt: skip
    kubectl.apply(json.dumps(manifest), namespace=namespace)
    wait_for(
        lambda: kubectl.run("get", "rolebinding", "chat-gateway", "-n", namespace,
                            "--ignore-not-found", "-o", "name").stdout.strip(),
        timeout_s=30, what="the gateway's Role and RoleBinding",
    )  # fmt: skip
    found: dict[str, Any] = kubectl.get("configmap", "chat-gateway", "-n", namespace)
    return found


def test_the_openai_sdk_runs_batches_through_the_gateway_as_batch_jobs(
    kubectl: Kubectl, namespace: str, dev_cluster: devenv.DevCluster, services: Processes,
    endpoint: dict[str, Any], tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    # The gateway as its pod runs it: the claim is a local folder, the key folder holds what
    # the projected volume would, and its Kubernetes identity is its ServiceAccount's token.
    storage, keys = tmp_path / "batch-claim", tmp_path / "api-keys"
    keys.mkdir()
    settings = json.loads(endpoint["data"]["gateway.json"])
    settings["api_keys_dir"] = str(keys)
    settings["batch"]["storage_dir"] = str(storage)
    (tmp_path / "gateway.json").write_text(json.dumps(settings))
    local = [str(dev_cluster.kubectl), f"--kubeconfig={dev_cluster.kubeconfig}"]
    kubeconfig = dataplane.service_account_kubeconfig(
        local, dev_cluster, namespace=namespace, account="chat-gateway",
        path=tmp_path / "gateway-kubeconfig",
    )  # fmt: skip
    for name, value in secret_data(kubectl, namespace, "callers").items():
        (keys / name).write_text(value)
    gateway = services.start(
        "gateway", "tiers.runtime.gateway", "--config", str(tmp_path / "gateway.json"),
        env={"KUBECONFIG": str(kubeconfig)},
    )  # fmt: skip

    def keys_synced(job: str, key: str) -> None:
        """The projected key volume of the gateway's pods, as the kubelet refreshes it."""

        def synced() -> bool:
            for source in ("callers", "chat-client-keys"):
                for name, value in secret_data(kubectl, namespace, source).items():
                    (keys / name).write_text(value)
            return accepted(gateway, key)

        wait_for(synced, timeout_s=30, what=f"the gateway to accept {job}'s key")

    in_cluster = gateway_manifests.url(labels.Ref("chat", namespace))
    spark = local_spark.LocalSparkOperator(
        local, namespace, endpoint_urls={in_cluster: gateway + "/v1"}, work_dir=tmp_path,
        env=dev_cluster.env(), before_run=keys_synced,
    )  # fmt: skip
    spark.start()
    try:
        alice = openai.OpenAI(base_url=gateway + "/v1", api_key=ALICE, max_retries=0)
        bob = openai.OpenAI(base_url=gateway + "/v1", api_key=BOB, max_retries=0)
        requests = "".join(json.dumps(line) + "\n" for line in LINES).encode()

        uploaded = alice.files.create(file=("requests.jsonl", requests), purpose="batch")
        assert uploaded.id.startswith("file-") and uploaded.bytes == len(requests)
        assert (uploaded.purpose, uploaded.filename) == ("batch", "requests.jsonl")
        assert alice.files.retrieve(uploaded.id).bytes == len(requests)
        assert alice.files.content(uploaded.id).content == requests
        with pytest.raises(openai.NotFoundError):
            bob.files.retrieve(uploaded.id)  # another tenant's file
        with pytest.raises(openai.APIStatusError) as too_large:
            alice.files.create(file=("big.jsonl", b"x" * (1024 * 1024 + 1)), purpose="batch")
        assert too_large.value.status_code == 413
        with pytest.raises(openai.BadRequestError, match="purpose"):
            alice.files.create(file=("r.jsonl", requests), purpose="fine-tune")

        batch = alice.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions",
            completion_window="24h", metadata={"run": "nightly"},
        )  # fmt: skip
        assert batch.status in ("validating", "in_progress")
        assert batch.metadata == {"run": "nightly"} and batch.input_file_id == uploaded.id
        with pytest.raises(openai.NotFoundError):
            bob.batches.retrieve(batch.id)
        job = kubectl.get("bjob", batch.id.replace("_", "-"), "-n", namespace)
        assert job["metadata"]["labels"]["tiers.dev/openai-batch"] == batch.id
        assert job["metadata"]["ownerReferences"][0]["kind"] == "RealtimeEndpoint"

        try:
            done = wait_for(
                lambda: (found := alice.batches.retrieve(batch.id)).status
                in ("completed", "failed", "expired") and found,
                timeout_s=600, interval_s=1, what="the batch to complete",
            )  # fmt: skip
        except AssertionError as error:
            seen = {kind: kubectl.get(kind, "-n", namespace)["items"]
                    for kind in ("bjob", "sparkapplications")}  # fmt: skip
            raise AssertionError(
                f"{error}\nstand-in: {spark.error!r}\n{json.dumps(seen, indent=1)}"
            ) from None
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed,
                done.request_counts.failed) == (3, 2, 1)  # fmt: skip
        assert done.completed_at and done.in_progress_at and done.output_file_id
        assert done.error_file_id
        output = [
            json.loads(line) for line in alice.files.content(done.output_file_id).text.splitlines()
        ]
        assert sorted(line["custom_id"] for line in output) == ["r1", "r2"]
        assert all(line["response"]["status_code"] == 200 for line in output)
        assert all(line["response"]["body"]["choices"] for line in output)
        (error,) = [
            json.loads(line) for line in alice.files.content(done.error_file_id).text.splitlines()
        ]
        assert error["custom_id"] == "r3" and error["response"]["status_code"] == 404
        assert error["response"]["body"]["error"]["code"] == "model_not_found"
        assert alice.files.retrieve(done.output_file_id).purpose == "batch_output"
        with pytest.raises(openai.NotFoundError):
            bob.files.content(done.output_file_id)

        # Another batch, cancelled while its run goes: its run stops, the batch is cancelled.
        second = alice.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_for(
            lambda: alice.batches.retrieve(second.id).status == "in_progress",
            timeout_s=180, interval_s=0.5, what="the second batch to start",
        )  # fmt: skip
        cancelling = alice.batches.cancel(second.id)
        assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
        cancelled = wait_for(
            lambda: (found := alice.batches.retrieve(second.id)).status == "cancelled" and found,
            timeout_s=120, interval_s=0.5, what="the second batch to be cancelled",
        )  # fmt: skip
        assert cancelled.cancelled_at
        wait_for(lambda: spark.stopped, timeout_s=60, what="the cancelled run's process to stop")
        with pytest.raises(openai.ConflictError):
            alice.batches.cancel(done.id)

        # The caller's batches, newest first, a page at a time; another tenant has none.
        page = alice.batches.list(limit=1)
        assert [b.id for b in page.data] == [second.id] and page.has_more
        assert [b.id for b in page.get_next_page().data] == [batch.id]
        assert bob.batches.list().data == []
    finally:
        spark.stop()
    log = "".join(path.read_text(errors="replace") for path in services.logs)
    assert ALICE not in log and BOB not in log, "a key reached a log"
