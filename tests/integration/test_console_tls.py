"""The console calling TLS gateways: the playground and the live view verify an endpoint's
gateway and a pipeline's push gateway against the CA that their resource publishes in status
(`status.address.CACerts`, `status.push.CACerts`: the operator's, the same as its CA
ConfigMap's), for their in-cluster names, with the session's operator making the certificates
and a real gateway and push gateway serving them. The console runs as the chart's console
ServiceAccount, which may read no ConfigMap: a gateway whose certificate is not the resource's
is refused, never called unverified, and a ConfigMap of the CA's name that someone else made
changes nothing."""

from __future__ import annotations

import base64
import json
import pathlib
import sys
from typing import Any

import pytest
from conftest import Kubectl, Processes, live_pipeline, start_console, wait_for
from test_console import _call

from tiers import devenv
from tiers.devenv import processes
from tiers.operator.manifests import serving_tls

pytestmark = pytest.mark.integration

BACKEND = {"name": "a", "provider": "openai-compatible", "model": "gpt-4o-mini",
           "baseURL": "http://127.0.0.1:9/v1"}  # fmt: skip
QUESTION = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}


def endpoint(name: str) -> str:
    spec = {"model": "gpt-4o-mini", "backends": [BACKEND], "cache": {"enabled": False}, "tls": {}}
    return json.dumps({"apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint",
                       "metadata": {"name": name}, "spec": spec})  # fmt: skip


def mounted_pair(kubectl: Kubectl, secret: str, namespace: str, folder: pathlib.Path) -> list[str]:
    """The certificate Secret the operator made, written out as the pods mount it: the flags
    that serve it."""
    found = wait_for(
        lambda: kubectl.run("get", "secret", secret, "-n", namespace, "-o", "json",
                            "--ignore-not-found").stdout.strip(),
        timeout_s=30, what=f"the operator's certificate Secret {secret}",
    )  # fmt: skip
    folder.mkdir(parents=True)
    for key in (serving_tls.CERT_KEY, serving_tls.KEY_KEY):
        (folder / key).write_bytes(base64.b64decode(json.loads(found)["data"][key]))
    return ["--tls-cert-file", str(folder / serving_tls.CERT_KEY),
            "--tls-key-file", str(folder / serving_tls.KEY_KEY)]  # fmt: skip


def serve(services: Processes, name: str, module: str, *args: str) -> int:
    """Starts a server on a free port, not waited for: its certificate names its Service, not
    localhost, so the console's own calls are what show it up."""
    port = processes.free_port()
    started = processes.start(
        name, [sys.executable, "-m", module, *args, "--port", str(port)], log_dir=services.log_dir
    )
    services.started.append(started)
    services.logs.append(started.log)
    return port


def published(kubectl: Kubectl, configmap: str, namespace: str) -> Any:
    return wait_for(
        lambda: kubectl.run("get", "configmap", configmap, "-n", namespace, "-o", "json",
                            "--ignore-not-found").stdout.strip(),
        timeout_s=30, what=f"the CA's ConfigMap {configmap}",
    )  # fmt: skip


def status_ca(kubectl: Kubectl, kind: str, name: str, namespace: str, block: str) -> str:
    """The CA certificates `name`'s status publishes in `status.<block>.CACerts`."""
    found: str = wait_for(
        lambda: ((kubectl.get(kind, name, "-n", namespace).get("status") or {})
                 .get(block) or {}).get("CACerts"),
        timeout_s=30, what=f"{kind} {name}'s status.{block}.CACerts",
    )  # fmt: skip
    return found


def test_the_playground_and_live_view_verify_tls_gateways_with_the_published_ca(
    dev_cluster: devenv.DevCluster, kubectl: Kubectl, operator: str, namespace: str,
    services: Processes, tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    kubectl.apply(endpoint("chat"), namespace=namespace)
    gateway = serve(services, "gateway", "tiers.runtime.gateway", "--no-cache",
                    "--backend", f"openai-compatible={mock}/v1",
                    *mounted_pair(kubectl, "chat-gateway-tls", namespace, tmp_path / "gateway"))  # fmt: skip

    topics, pipeline = live_pipeline(dev_cluster.kafka_bootstrap, "console-tls", push={"tls": {}})
    kubectl.apply(json.dumps(pipeline), namespace=namespace)
    push = serve(services, "push", "tiers.runtime.stream", "push",
                 "--bootstrap", dev_cluster.kafka_bootstrap, "--input", topics["in"],
                 "--output", topics["out"],
                 *mounted_pair(kubectl, "reviews-push-tls", namespace, tmp_path / "push"))  # fmt: skip

    # Another endpoint's name on the chat gateway (whose certificate is not its), and a third
    # whose CA ConfigMap someone else made, holding the chat gateway's CA.
    kubectl.apply(endpoint("other"), namespace=namespace)
    chat_ca = json.loads(published(kubectl, "chat-gateway-ca", namespace))["data"]
    planted = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "third-gateway-ca"}, "data": chat_ca}  # fmt: skip
    kubectl.apply(json.dumps(planted), namespace=namespace)
    kubectl.apply(endpoint("third"), namespace=namespace)
    # Status publishes what the ConfigMap does, the CA certificate and no key; the third
    # endpoint publishes its own CA, whatever the ConfigMap of its CA's name holds.
    assert status_ca(kubectl, "rte", "chat", namespace, "address") == chat_ca[serving_tls.CA_KEY]
    assert "PRIVATE KEY" not in chat_ca[serving_tls.CA_KEY]
    cas = {
        name: status_ca(kubectl, "rte", name, namespace, "address") for name in ("other", "third")
    }
    assert chat_ca[serving_tls.CA_KEY] not in cas.values()
    push_ca = json.loads(published(kubectl, "reviews-push-ca", namespace))["data"]
    assert status_ca(kubectl, "spipe", "reviews", namespace, "push") == push_ca[serving_tls.CA_KEY]

    svc = f"gateway.{namespace}.svc:8080/v1"
    overrides = [f"https://{name}-{svc}=https://127.0.0.1:{gateway}/v1"
                 for name in ("chat", "other", "third")]  # fmt: skip
    overrides.append(f"https://reviews-push.{namespace}.svc:8086=https://127.0.0.1:{push}")
    url, started = start_console(
        dev_cluster, kubectl, tmp_path, *(f"--url-override={pair}" for pair in overrides)
    )
    try:
        base = f"{url}/api/v1/realtime/{namespace}"
        for name in ("chat", "other", "third"):
            wait_for(lambda n=name: kubectl.get("rte", n, "-n", namespace).get("status", {})
                     .get("url", "").startswith("https://"),
                     timeout_s=30, what=f"{name}'s status.url in https")  # fmt: skip
        chat = f"{base}/chat/chat/completions"
        answered = wait_for(
            lambda: (got := _call(chat, body=json.dumps(QUESTION).encode()))[0] == 200 and got,
            timeout_s=30, what="the playground's answer from the TLS gateway",
        )  # fmt: skip
        assert answered[2]["choices"][0]["message"]["content"]
        assert float(answered[1]["x-tiers-cost-usd"]) > 0

        for name in ("other", "third"):
            status, _, refused = _call(f"{base}/{name}/chat/completions", body=json.dumps(QUESTION).encode())  # fmt: skip
            assert (status, refused["error"]["reason"]) == (502, "Unreachable"), name
            assert "certificate was not verified" in refused["error"]["message"]

        live = f"{url}/api/v1/stream/{namespace}/reviews"
        sent = wait_for(
            lambda: (got := _call(f"{live}/events", body=json.dumps(
                {"events": [{"id": "e1", "text": "great"}]}).encode()))[0] == 200 and got,
            timeout_s=60, what="an event sent through the TLS push gateway",
        )  # fmt: skip
        assert sent[2] == {"sent": 1}
    finally:
        processes.stop(started.pid)
