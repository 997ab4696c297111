"""OpenAI's Batch API on a RealtimeEndpoint with `spec.batch`, driven by the real `openai` SDK:
files uploaded to the gateway, each batch a BatchJob that the gateway creates with its own
ServiceAccount's token (the Role the operator rendered for it, nothing more), run by the real
operator and scored by the real batch job on local Spark through the endpoint; the batch read
back as OpenAI's object, its output and error files downloaded, another batch cancelled mid-run.

No Spark Operator runs here, and kwok runs no containers: `devenv.local_spark` plays the Spark
Operator for the batches' SparkApplications, running each one's command as a local process
with the config and key its driver pod would get, and writing the state the Spark Operator
would write; it stops the process when the operator deletes the application (a cancel).

With `spec.batch.engine: databricks` the files live in a Unity Catalog volume of the Databricks
test server (`tiers.devenv.databricks`, through its Files API), and each batch is a Databricks
run there, which reads and writes them at dbfs:/Volumes/... URIs and calls the endpoint; a
batch cancelled there has its run cancelled (`runs/cancel`) and is cancelled once the run has
ended; and a workspace named by its Azure resource ID is read from the fake Azure Resource
Manager (`tiers.devenv.azure`) for the gateway's files and the batches' runs.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import pathlib
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from conftest import Kubectl, Processes, wait_for
from test_batch_databricks import (  # noqa: F401 (own_env, own_operator, workspace: fixtures)
    TOKEN,
    azure_identity_env,
    own_env,
    own_operator,
    workspace,
)

from tiers import devenv
from tiers.devenv import azure, databricks, dataplane, local_spark, processes
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


def create_endpoint(
    kubectl: Kubectl, namespace: str, services: Processes, batch: dict[str, Any],
    *mock_args: str,
) -> dict[str, Any]:  # fmt: skip
    """The endpoint `chat` with the Batch API `batch` (and a mockllm backend started with
    `mock_args`, callers alice and bob), once the operator has made its gateway's Role; its
    gateway's ConfigMap."""
    mock = services.start("mockllm", "tiers.runtime.mockllm", *mock_args)
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
            "batch": batch,
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


@pytest.fixture
def endpoint(
    kubectl: Kubectl, operator: str, namespace: str, services: Processes,
    spark_operator_crd: None,
) -> dict[str, Any]:  # fmt: skip
    batch = {
        "storage": {"claimName": "batches"},
        "maxFileMB": 1,
        "spark": {"mode": "spark-operator", "executors": 1, "executorCores": 2,
                  "executorMemory": "2Gi"},
    }  # fmt: skip
    return create_endpoint(kubectl, namespace, services, batch)


@dataclasses.dataclass
class Gateway:
    """The endpoint's gateway as its pod runs it: its storage folder a local one, its key folder
    holding what the projected volume would, its Kubernetes identity its ServiceAccount's."""

    url: str
    keys: pathlib.Path

    def accepts(self, kubectl: Kubectl, namespace: str, job: str, key: str) -> None:
        """Waits until the gateway accepts `job`'s key, refreshing the key folder from the
        Secrets as the kubelet refreshes the projected volume."""

        def synced() -> bool:
            for source in ("callers", "chat-client-keys"):
                for name, value in secret_data(kubectl, namespace, source).items():
                    (self.keys / name).write_text(value)
            return accepted(self.url, key)

        wait_for(synced, timeout_s=30, what=f"the gateway to accept {job}'s key")


def start_gateway(
    kubectl: Kubectl, namespace: str, dev_cluster: devenv.DevCluster, services: Processes,
    configmap: dict[str, Any], tmp_path: pathlib.Path, *, env: dict[str, str] | None = None,
) -> Gateway:  # fmt: skip
    storage, keys = tmp_path / "batch-claim", tmp_path / "api-keys"
    keys.mkdir()
    settings = json.loads(configmap["data"]["gateway.json"])
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
    url = services.start(
        "gateway", "tiers.runtime.gateway", "--config", str(tmp_path / "gateway.json"),
        env={"KUBECONFIG": str(kubeconfig), **(env or {})},
    )  # fmt: skip
    return Gateway(url, keys)


def proxy_ready(kubectl: Kubectl, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The endpoint's ProxyReady condition while its reason is `reason`, else nothing."""
    conditions = kubectl.get("rte", name, "-n", namespace).get("status", {}).get("conditions", [])
    found = [c for c in conditions if c["type"] == "ProxyReady" and c["reason"] == reason]
    return found[0] if found else {}


def completed(client: openai.OpenAI, batch_id: str, *, timeout_s: float) -> Any:
    """The batch once it has ended (completed, failed or expired)."""
    return wait_for(
        lambda: (found := client.batches.retrieve(batch_id)).status
        in ("completed", "failed", "expired") and found,
        timeout_s=timeout_s, interval_s=1, what="the batch to complete",
    )  # fmt: skip


def check_results(client: openai.OpenAI, done: Any) -> None:
    """A completed batch of `LINES`: r1 and r2 answered in the output file, r3 (a model the
    endpoint does not serve) in the error file."""
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed,
            done.request_counts.failed) == (3, 2, 1)  # fmt: skip
    assert done.completed_at and done.in_progress_at and done.output_file_id
    assert done.error_file_id
    output = [
        json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()
    ]
    assert sorted(line["custom_id"] for line in output) == ["r1", "r2"]
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert all(line["response"]["body"]["choices"] for line in output)
    (error,) = [
        json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()
    ]
    assert error["custom_id"] == "r3" and error["response"]["status_code"] == 404
    assert error["response"]["body"]["error"]["code"] == "model_not_found"
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"


def test_the_openai_sdk_runs_batches_through_the_gateway_as_batch_jobs(
    kubectl: Kubectl, namespace: str, dev_cluster: devenv.DevCluster, services: Processes,
    endpoint: dict[str, Any], tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    started = start_gateway(kubectl, namespace, dev_cluster, services, endpoint, tmp_path)
    gateway = started.url
    local = [str(dev_cluster.kubectl), f"--kubeconfig={dev_cluster.kubeconfig}"]
    in_cluster = gateway_manifests.url(labels.Ref("chat", namespace))
    spark = local_spark.LocalSparkOperator(
        local, namespace, endpoint_urls={in_cluster: gateway + "/v1"}, work_dir=tmp_path,
        env=dev_cluster.env(), before_run=functools.partial(started.accepts, kubectl, namespace),
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
            done = completed(alice, batch.id, timeout_s=600)
        except AssertionError as error:
            seen = {kind: kubectl.get(kind, "-n", namespace)["items"]
                    for kind in ("bjob", "sparkapplications")}  # fmt: skip
            raise AssertionError(
                f"{error}\nstand-in: {spark.error!r}\n{json.dumps(seen, indent=1)}"
            ) from None
        check_results(alice, done)
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


VOLUME = "/Volumes/main/tiers/batches/chat"


def databricks_batch(**where: str) -> dict[str, Any]:
    """`spec.batch` on the test workspace (`host`, or `workspaceResourceId`): files in its
    volume, each batch a Databricks run."""
    return {
        "engine": "databricks",
        "storage": {"uri": f"dbfs:{VOLUME}"},
        "maxFileMB": 1,
        "databricks": {**where, "newCluster": {"numWorkers": 0},
                       "tokenSecretRef": {"name": "databricks", "key": "token"},
                       "secretScope": "tiers-tests"},
    }  # fmt: skip


def test_the_openai_sdk_runs_a_batch_on_databricks_with_its_files_in_a_volume(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster,
    services: Processes, workspace: databricks.Server,  # noqa: F811 (the imported fixture)
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    # engine databricks: the gateway keeps the files in a Unity Catalog volume through the
    # test workspace's Files API, and each batch is a Databricks run reading and writing them
    # there (the test workspace's local DBFS folder), calling the endpoint from the cluster.
    configmap = create_endpoint(kubectl, namespace, services, databricks_batch(host=workspace.url))
    # The gateway pods read the workspace token from its Secret: until it exists, they cannot
    # start, and the endpoint says which Secret it waits for.
    proxy = wait_for(
        lambda: proxy_ready(kubectl, namespace, "chat", "SecretNotFound"),
        timeout_s=30, what="ProxyReady SecretNotFound for the workspace token",
    )  # fmt: skip
    assert "spec.batch.databricks.tokenSecretRef" in proxy["message"]
    kubectl.run("create", "secret", "generic", "databricks", "-n", namespace,
                f"--from-literal=token={TOKEN}")  # fmt: skip
    started = start_gateway(
        kubectl, namespace, dev_cluster, services, configmap, tmp_path,
        env={gateway_manifests.BATCH_DATABRICKS_TOKEN_ENV: TOKEN},
    )  # fmt: skip
    in_cluster = gateway_manifests.url(labels.Ref("chat", namespace))
    workspace.workspace.network[in_cluster] = started.url + "/v1"
    workspace.workspace.pending_s = 3600  # each run waits for its key to be accepted (below)
    alice = openai.OpenAI(base_url=started.url + "/v1", api_key=ALICE, max_retries=0)
    requests = "".join(json.dumps(line) + "\n" for line in LINES).encode()

    uploaded = alice.files.create(file=("requests.jsonl", requests), purpose="batch")
    assert alice.files.content(uploaded.id).content == requests
    in_volume = workspace.workspace.volumes.local(f"{VOLUME}/files/{uploaded.id}.jsonl")
    assert in_volume.read_bytes() == requests
    batch_object = alice.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    name = batch_object.id.replace("_", "-")
    spec = kubectl.get("bjob", name, "-n", namespace)["spec"]
    assert (spec["engine"], spec["input"]["uri"], spec["output"]["uri"]) == (
        "databricks", f"dbfs:{VOLUME}/files/{uploaded.id}.jsonl", f"dbfs:{VOLUME}/batches/{name}",
    )  # fmt: skip
    assert spec["databricks"]["host"] == workspace.url and "volume" not in spec
    wait_for(lambda: workspace.workspace.runs, timeout_s=60, what="the batch's Databricks run")
    key = secret_data(kubectl, namespace, f"{name}-batch-key")["key"]
    started.accepts(kubectl, namespace, name, key)
    workspace.workspace.pending_s = 0.5
    try:
        done = completed(alice, batch_object.id, timeout_s=420)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n{json.dumps(kubectl.get('bjob', name, '-n', namespace).get('status'))}"
        ) from None
    check_results(alice, done)
    [run] = workspace.workspace.runs.values()
    assert run.result_state == "SUCCESS"
    served = {path for method, path, _ in workspace.workspace.requests if method == "PUT"}
    assert f"/api/2.0/fs/files{VOLUME}/files/{uploaded.id}.jsonl" in served
    log = "".join(path.read_text(errors="replace") for path in services.logs)
    assert TOKEN not in log and ALICE not in log, "a key reached a log"


def test_a_batch_cancelled_on_databricks_cancels_its_run_and_ends_cancelled(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster,
    services: Processes, workspace: databricks.Server,  # noqa: F811 (the imported fixture)
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    kubectl.run("create", "secret", "generic", "databricks", "-n", namespace,
                f"--from-literal=token={TOKEN}")  # fmt: skip
    # A backend that answers after 20 s holds the run RUNNING, so the cancel always finds it
    # there: scoring three lines against an instant backend can end before the cancel arrives.
    configmap = create_endpoint(
        kubectl, namespace, services, databricks_batch(host=workspace.url), "--latency-ms", "20000"
    )
    started = start_gateway(
        kubectl, namespace, dev_cluster, services, configmap, tmp_path,
        env={gateway_manifests.BATCH_DATABRICKS_TOKEN_ENV: TOKEN},
    )  # fmt: skip
    # A cancelled run stays TERMINATING a while, as a real cluster's tasks take time to stop:
    # the batch is cancelling until the run has ended.
    workspace.workspace.terminating_s = 1.5
    alice = openai.OpenAI(base_url=started.url + "/v1", api_key=ALICE, max_retries=0)
    requests = "".join(json.dumps(line) + "\n" for line in LINES).encode()
    uploaded = alice.files.create(file=("requests.jsonl", requests), purpose="batch")
    batch = alice.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # Its run goes (its task waiting for the slow backend) as it is cancelled.
    wait_for(lambda: alice.batches.retrieve(batch.id).status == "in_progress", timeout_s=60,
             interval_s=0.3, what="the batch to be in progress")  # fmt: skip
    run = wait_for(
        lambda: next((r for r in list(workspace.workspace.runs.values())
                      if r.life_cycle_state == "RUNNING"), None),
        timeout_s=60, what="the batch's Databricks run to be RUNNING",
    )  # fmt: skip

    cancelling = alice.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    assert cancelling.cancelled_at is None
    wait_for(lambda: run.cancelled, timeout_s=30, what="the operator to cancel the run")
    seen: list[str] = []

    def cancelled_batch() -> Any:
        found = alice.batches.retrieve(batch.id)
        seen.append(found.status)
        return found.status == "cancelled" and found

    cancelled = wait_for(cancelled_batch, timeout_s=60, interval_s=0.3, what="the cancel")
    described = workspace.workspace.get_run(run.run_id)
    assert described["state"]["life_cycle_state"] == "TERMINATED", described
    assert described["state"]["result_state"] == "CANCELED"
    assert described["status"]["termination_details"]["code"] == "USER_CANCELED"
    cancels = [body for method, path, body in workspace.workspace.requests
               if path.endswith("/jobs/runs/cancel")]  # fmt: skip
    assert cancels == [{"run_id": run.run_id}]
    # Cancelling while the run went on (TERMINATING), cancelled once Databricks said it ended.
    assert seen[0] == "cancelling" and set(seen[:-1]) == {"cancelling"}, seen
    assert cancelled.cancelling_at <= cancelled.cancelled_at
    assert cancelled.in_progress_at and cancelled.in_progress_at <= cancelled.cancelling_at
    assert cancelled.completed_at is None and cancelled.failed_at is None
    # OpenAI's counts: every request of the batch, none answered before it was cancelled.
    counts = cancelled.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (3, 0, 0)
    assert cancelled.output_file_id is None and cancelled.error_file_id is None
    with pytest.raises(openai.ConflictError):
        alice.batches.cancel(batch.id)
    job = kubectl.get("bjob", batch.id.replace("_", "-"), "-n", namespace)
    assert job["status"]["lastRun"]["databricks"]["lifeCycleState"] == "TERMINATED"
    assert job["status"]["lastRun"]["databricks"]["resultState"] == "CANCELED"


AZURE_WORKSPACES = ("/subscriptions/0a1b2c3d-0000-4000-8000-00000000abcd/resourceGroups/data-rg"
                    "/providers/Microsoft.Databricks/workspaces")  # fmt: skip


def test_a_batch_api_on_a_workspace_named_by_azure_resource_id_keeps_its_files_and_runs_there(
    own_kubectl: Kubectl, own_namespace: str, own_cluster: devenv.DevCluster,
    own_env: dict[str, str],  # noqa: F811 (the imported fixture)
    own_operator: list[str],  # noqa: F811 (the imported fixture)
    workspace: databricks.Server,  # noqa: F811 (the imported fixture)
    services: Processes, tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    # The fake Azure Resource Manager knows the test workspace by its ID; an operator of the
    # test's own reads it there as its workload identity, alone on the second control plane
    # (the session's operator has no Azure).
    kubectl, namespace = own_kubectl, own_namespace
    workspace.workspace.pending_s = 3600  # submitted is enough: nothing runs
    operator_id = "11111111-2222-4333-8444-000000000007"
    token_file = tmp_path / "federated-token"
    token_file.write_text("projected-service-account-token")
    kubectl.run("create", "secret", "generic", "databricks", "-n", namespace,
                f"--from-literal=token={TOKEN}")  # fmt: skip
    with azure.running(
        workspaces={f"{AZURE_WORKSPACES}/ml-prod": workspace.url},
        clients={operator_id: "projected-service-account-token"},
    ) as arm:
        env = {**own_env, **azure_identity_env(arm, operator_id, token_file)}
        started_operator = processes.start("operator-azure", own_operator, log_dir=tmp_path,
                                           env=env)  # fmt: skip
        try:
            resource_id = f"{AZURE_WORKSPACES}/ml-prod"
            configmap = create_endpoint(
                kubectl, namespace, services, databricks_batch(workspaceResourceId=resource_id)
            )
            # The gateway writes the files to the workspace Azure named.
            settings = json.loads(configmap["data"]["gateway.json"])["batch"]
            assert settings["volume"]["host"] == workspace.url
            gateway = start_gateway(
                kubectl, namespace, own_cluster, services, configmap, tmp_path,
                env={gateway_manifests.BATCH_DATABRICKS_TOKEN_ENV: TOKEN},
            )  # fmt: skip
            alice = openai.OpenAI(base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0)
            requests = "".join(json.dumps(line) + "\n" for line in LINES).encode()
            uploaded = alice.files.create(file=("requests.jsonl", requests), purpose="batch")
            in_volume = workspace.workspace.volumes.local(f"{VOLUME}/files/{uploaded.id}.jsonl")
            assert in_volume.read_bytes() == requests
            batch = alice.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                completion_window="24h",
            )  # fmt: skip
            # Its BatchJob names the workspace by the same ID, and its run is submitted there.
            name = batch.id.replace("_", "-")
            spec = kubectl.get("bjob", name, "-n", namespace)["spec"]["databricks"]
            assert spec["workspaceResourceId"] == resource_id and "host" not in spec
            recorded = wait_for(
                lambda: kubectl.get("bjob", name, "-n", namespace).get("status", {})
                .get("lastRun", {}).get("databricks", {}).get("runId"),
                timeout_s=60, what="the batch's run submitted to the workspace Azure named",
            )  # fmt: skip
            assert list(workspace.workspace.runs) == [recorded]

            # An ID Azure does not know: the endpoint says so, naming the field.
            gone = kubectl.get("rte", "chat", "-n", namespace)
            gone["metadata"] = {"name": "gone"}
            gone["spec"]["batch"]["databricks"]["workspaceResourceId"] = (
                f"{AZURE_WORKSPACES}/ml-gone"
            )
            del gone["status"]
            kubectl.apply(json.dumps(gone), namespace=namespace)
            proxy = wait_for(
                lambda: proxy_ready(kubectl, namespace, "gone", "WorkspaceNotFound"),
                timeout_s=60, what="ProxyReady WorkspaceNotFound for the unknown ID",
            )  # fmt: skip
        finally:
            processes.stop(started_operator.pid, grace_s=5)
    assert proxy["status"] == "False"
    assert "spec.batch.databricks.workspaceResourceId" in proxy["message"]
    assert f"{AZURE_WORKSPACES}/ml-gone" in proxy["message"]
