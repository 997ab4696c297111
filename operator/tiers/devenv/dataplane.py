"""Local mode: run, as local processes, the data plane that kwok pods stand for.

kwok pods never run containers, so the demo and the tests start the same program the pod would
run, with the same config (read from the ConfigMap the operator rendered) and the same
environment, on a loopback port.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess
import sys
import urllib.request

from tiers.devenv import cluster, jars, pki, processes
from tiers.operator.manifests import batch_children, gateway, labels, stream_children


def rendered_gateway_config(kubectl: list[str], namespace: str, endpoint: str) -> str:
    """The gateway.json the operator rendered for a RealtimeEndpoint."""
    name = gateway.name(labels.Ref(endpoint, namespace))
    return _configmap_value(kubectl, namespace, name, gateway.CONFIG_FILE)


STARTED_LINE = "streaming "
"""What `tiers.runtime.stream.job.run` logs when its query has started."""


def start_gateway(
    kubectl: list[str],
    *,
    namespace: str,
    endpoint: str,
    redis_url: str,
    work_dir: pathlib.Path,
    env: dict[str, str] | None = None,
    dev_cluster: cluster.DevCluster | None = None,
) -> tuple[str, processes.Started]:
    """Starts the endpoint's gateway on a free port; returns its base URL once it is healthy.

    With the Batch API (`spec.batch`), its claim is a folder under `work_dir`, and the gateway
    calls `dev_cluster`'s apiserver as its own ServiceAccount, as its pod would."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / f"{namespace}-{endpoint}-gateway.json"
    settings = json.loads(rendered_gateway_config(kubectl, namespace, endpoint))
    env = dict(env or {})
    if settings.get("batch") is not None and dev_cluster is not None:
        settings["batch"]["storage_dir"] = str(work_dir / f"{namespace}-{endpoint}-batch")
        kubeconfig = service_account_kubeconfig(
            kubectl, dev_cluster, namespace=namespace,
            account=gateway.name(labels.Ref(endpoint, namespace)),
            path=work_dir / f"{namespace}-{endpoint}-gateway.kubeconfig",
        )  # fmt: skip
        env["KUBECONFIG"] = str(kubeconfig)
    config.write_text(json.dumps(settings, indent=2))
    port = processes.free_port()
    started = processes.start(
        f"gateway-{namespace}-{endpoint}",
        [sys.executable, "-m", "tiers.runtime.gateway", "--config", config, "--port", str(port)],
        log_dir=work_dir,
        env={**os.environ, **env, "TIERS_REDIS_URL": redis_url},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: _ok(url + "/healthz"), what="waiting for the gateway", timeout_s=30,
            watch=started,
        )  # fmt: skip
    except BaseException:
        processes.stop(started.pid)  # a failed start leaves no process behind
        raise
    return url, started


def start_stream(
    kubectl: list[str],
    *,
    namespace: str,
    pipeline: str,
    endpoint_urls: dict[str, str],
    redis_url: str,
    work_dir: pathlib.Path,
) -> tuple[str, list[processes.Started]]:
    """Starts a StreamPipeline's Spark job and push gateway from the rendered stream.json.

    What only exists inside a cluster is mapped to its local stand-in: the checkpoint volume to
    a folder, the image's connector jars to the cached ones, RealtimeEndpoint Service URLs to
    the local gateways in `endpoint_urls`, and the stats Redis to the dev one. Returns the push
    gateway's base URL and the processes.
    """
    ref = labels.Ref(pipeline, namespace)
    name = stream_children.JOB.name(ref)
    settings = json.loads(_configmap_value(kubectl, namespace, name, stream_children.CONFIG_FILE))
    target = settings["model"]["target"]
    if "url" in target and target["url"] in endpoint_urls:
        target["url"] = endpoint_urls[target["url"]]
    checkpoint = work_dir / f"{namespace}-{pipeline}-checkpoint"
    # The dev Redis stands for the pipeline's own stats Redis, and has no password.
    settings.update(
        checkpoint=checkpoint.as_uri(),
        jars=[str(jar) for jar in jars.connector_jars()],
        stats_redis_url=redis_url,
        stats_redis_password_env=None,
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / f"{namespace}-{pipeline}-stream.json"
    config.write_text(json.dumps(settings, indent=2))
    job = processes.start(
        f"stream-job-{namespace}-{pipeline}",
        [sys.executable, "-m", "tiers.runtime.stream", "job", "--config", config],
        log_dir=work_dir,
        env={**os.environ, **pod_env(kubectl, namespace, name)},
    )
    port = processes.free_port()
    push = processes.start(
        f"push-{namespace}-{pipeline}",
        [sys.executable, "-m", "tiers.runtime.stream", "push", "--config", config,
         "--port", str(port)],
        log_dir=work_dir,
        env={**os.environ, **pod_env(kubectl, namespace, stream_children.PUSH.name(ref))},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: _ok(url + "/healthz"), what="waiting for the push gateway", timeout_s=30,
            watch=push,
        )  # fmt: skip
        # The job logs this line once its query runs; events sent earlier wait for Spark to start.
        processes.wait_until(
            lambda: STARTED_LINE in job.log.read_text(errors="replace"),
            what="waiting for the streaming query to start",
            # Spark's JVM and its first Python workers: over two minutes on a loaded machine.
            timeout_s=300,
            watch=job,
            interval_s=0.5,
        )
    except BaseException:
        # The caller never gets them to stop: a failed start leaves no process behind.
        for started in (push, job):
            processes.stop(started.pid)
        raise
    return url, [job, push]


def run_batch(
    kubectl: list[str],
    *,
    namespace: str,
    job: str,
    run: str,
    output_uri: str,
    endpoint_urls: dict[str, str],
    work_dir: pathlib.Path,
) -> subprocess.CompletedProcess[str]:
    """Runs one run of a BatchJob to its end, as its Job's pod would, from the rendered
    batch.json (endpoint Service URLs mapped to the local gateways). Its progress line goes to
    this process's terminal; its summary (a JSON line) comes back as stdout."""
    name = batch_children.CONFIG.name(labels.Ref(job, namespace))
    settings = json.loads(_configmap_value(kubectl, namespace, name, batch_children.CONFIG_FILE))
    target = settings["model"]["target"]
    if "url" in target and target["url"] in endpoint_urls:
        target["url"] = endpoint_urls[target["url"]]
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / f"{namespace}-{job}-batch.json"
    config.write_text(json.dumps(settings, indent=2))
    return subprocess.run(
        [sys.executable, "-m", "tiers.runtime.batch", "run", "--config", str(config),
         "--run", run, "--output", output_uri],
        stdout=subprocess.PIPE, text=True, check=True, timeout=600,
    )  # fmt: skip


def service_account_kubeconfig(
    kubectl: list[str],
    dev_cluster: cluster.DevCluster,
    *,
    namespace: str,
    account: str,
    path: pathlib.Path,
) -> pathlib.Path:
    """A kubeconfig holding a token of a ServiceAccount: what its pods would call the apiserver
    with, so a local process has exactly that account's RBAC."""
    token = subprocess.run(
        [*kubectl, "create", "token", account, "-n", namespace, "--duration=24h"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ca_cert = dev_cluster.state_dir / "pki" / "ca.crt"
    path.write_text(pki.kubeconfig(server=dev_cluster.server, ca_cert=ca_cert, token=token))
    path.chmod(0o600)
    return path


def pod_env(kubectl: list[str], namespace: str, deployment: str) -> dict[str, str]:
    """The environment a Deployment's pods get (its first container's), Secrets read as the
    kubelet reads them; empty when there is no such Deployment (a SparkApplication's job)."""
    found = subprocess.run(
        [*kubectl, "get", "deployment", deployment, "-n", namespace, "-o", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    if found.returncode != 0:
        return {}
    container = json.loads(found.stdout)["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for entry in container.get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            env[entry["name"]] = entry.get("value", "")
            continue
        secret = subprocess.run(
            [*kubectl, "get", "secret", ref["name"], "-n", namespace, "-o", "json"],
            capture_output=True, text=True,
        )  # fmt: skip
        data = json.loads(secret.stdout).get("data") or {} if secret.returncode == 0 else {}
        if ref["key"] in data:
            env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


def _configmap_value(kubectl: list[str], namespace: str, name: str, key: str) -> str:
    result = subprocess.run(
        [*kubectl, "get", "configmap", name, "-n", namespace, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    value: str = json.loads(result.stdout)["data"][key]
    return value


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
