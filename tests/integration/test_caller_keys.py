"""A StreamPipeline that calls a RealtimeEndpoint with `auth` gets a key of its own: generated
once into a Secret the pipeline owns and read by its job by reference, while the endpoint's
gateway accepts its digest (mounted beside the endpoint's own keys) until the pipeline goes."""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import urllib.error
import urllib.request
import uuid
from typing import Any

from conftest import Kubectl, Processes, wait_for

from tiers import devenv
from tiers.devenv import dataplane


def secret_data(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    found = kubectl.run("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    data = json.loads(found.stdout).get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def call(gateway: str, key: str) -> int:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        gateway + "/v1/chat/completions",
        data=body.encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_a_pipeline_calls_an_endpoint_with_auth_with_a_key_of_its_own(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    services: Processes,
    tmp_path: pathlib.Path,
) -> None:
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    kubectl.run("create", "secret", "generic", "callers", "-n", namespace,
                "--from-literal=alice=alice-key")  # fmt: skip
    suffix = uuid.uuid4().hex[:8]
    endpoint: dict[str, Any] = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "gpt-4o-mini",
            "backends": [{"name": "mock", "provider": "openai-compatible",
                          "baseURL": f"{mock}/v1", "model": "gpt-4o-mini"}],
            "auth": {"apiKeysSecretRef": {"name": "callers"}},
        },
    }  # fmt: skip
    pipeline: dict[str, Any] = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "StreamPipeline",
        "metadata": {"name": "summaries"},
        "spec": {
            "kafka": {"bootstrapServers": dev_cluster.kafka_bootstrap},
            "topics": {"input": {"name": f"in-{suffix}"}, "output": {"name": f"out-{suffix}"},
                       "deadLetter": {"name": f"dlq-{suffix}"}},
            "model": {"endpointRef": {"name": "chat"}, "prompt": "Summarize: {text}"},
            "checkpoint": {"volumeSize": "1Gi"},
        },
    }  # fmt: skip
    kubectl.apply(json.dumps(endpoint), namespace=namespace)
    kubectl.apply(json.dumps(pipeline), namespace=namespace)

    accepted = wait_for(
        lambda: secret_data(kubectl, namespace, "chat-client-keys").get("streampipeline.summaries"),
        timeout_s=40,
        what="the pipeline's digest among the endpoint's accepted keys",
    )
    key = secret_data(kubectl, namespace, "summaries-stream-key")["key"]
    assert accepted == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    job = kubectl.get("deployment", "summaries-stream", "-n", namespace)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["TIERS_MODEL_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "summaries-stream-key", "key": "key"}
    }
    stream_json = kubectl.get("configmap", "summaries-stream", "-n", namespace)["data"]
    assert key not in json.dumps(stream_json)
    assert json.loads(stream_json["stream.json"])["model"]["target"]["api_key_env"] == (
        "TIERS_MODEL_API_KEY"
    )
    assert secret_data(kubectl, namespace, "summaries-stream-key")["key"] == key, "made once"
    # Local mode runs the job with the environment its pod gets: the key, read from its Secret.
    local = [str(dev_cluster.kubectl), f"--kubeconfig={dev_cluster.kubeconfig}"]
    assert dataplane.pod_env(local, namespace, "summaries-stream")["TIERS_MODEL_API_KEY"] == key

    # The gateway as its pod runs it, its key folder as the projected volume fills it.
    keys = tmp_path / "api-keys"
    keys.mkdir()
    for source in ("callers", "chat-client-keys"):
        for name, value in secret_data(kubectl, namespace, source).items():
            (keys / name).write_text(value)
    settings = json.loads(
        kubectl.get("configmap", "chat-gateway", "-n", namespace)["data"]["gateway.json"]
    )
    settings["api_keys_dir"] = str(keys)
    config_file = tmp_path / "gateway.json"
    config_file.write_text(json.dumps(settings))
    gateway = services.start("gateway", "tiers.runtime.gateway", "--config", str(config_file))
    assert call(gateway, key) == 200, "the pipeline's own key is accepted"
    assert call(gateway, "alice-key") == 200
    assert call(gateway, accepted) == 401, "the digest itself is not a key"
    assert call(gateway, "not-a-key") == 401

    kubectl.run("delete", "spipe", "summaries", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: (
            "streampipeline.summaries" not in secret_data(kubectl, namespace, "chat-client-keys")
        ),
        timeout_s=30,
        what="the deleted pipeline's digest to leave the accepted keys",
    )
