"""The local control plane behaves like a cluster: nodes, scheduling, controllers, Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from conftest import Kubectl, wait_for

from tiers import devenv

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
"""


def test_kwok_nodes_are_ready(kubectl: Kubectl) -> None:
    nodes = kubectl.get("nodes")["items"]
    assert len(nodes) == 3
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", node["metadata"]["name"]


def test_a_deployment_becomes_available(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(DEPLOYMENT, namespace=namespace)

    def available() -> bool:
        status = kubectl.get("deployment", "web", "-n", namespace).get("status", {})
        return status.get("availableReplicas") == 3

    wait_for(available, timeout_s=60, what="3 available replicas")
    pods = kubectl.get("pods", "-n", namespace, "-l", "app=web")["items"]
    assert {pod["status"]["phase"] for pod in pods} == {"Running"}
    assert all(pod["spec"]["nodeName"].startswith("kwok-node-") for pod in pods)


def test_dev_env_exports_work_in_a_shell(dev_cluster: devenv.DevCluster) -> None:
    tiers = [sys.executable, "-m", "tiers.cli", "dev", "--state-dir", str(dev_cluster.state_dir)]
    exports = subprocess.run([*tiers, "env"], capture_output=True, text=True, check=True).stdout
    shell = subprocess.run(
        ["bash", "-c", f"{exports}\nkubectl version -o json && kubectl get nodes -o name"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
    )
    assert shell.returncode == 0, shell.stderr
    assert '"gitVersion": "v1.36' in shell.stdout
    assert shell.stdout.count("node/kwok-node-") == 3


def test_redis_answers(dev_cluster: devenv.DevCluster) -> None:
    port = int(dev_cluster.redis_url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        reply = b""
        while not reply.endswith(b"v\r\n"):
            reply += sock.recv(64)
    assert reply == b"+OK\r\n$1\r\nv\r\n"


def test_up_again_returns_the_running_environment(dev_cluster: devenv.DevCluster) -> None:
    again = devenv.up(dev_cluster.state_dir, with_helm=False)
    assert again.server == dev_cluster.server
    assert again.processes == dev_cluster.processes
