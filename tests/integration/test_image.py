"""The image runs every entry point (`make image`: the Dockerfile built without Docker, cached).

Each container runs as the cluster runs it: user 65532, a read-only root filesystem and an empty
writable /tmp (the pods' emptyDir), on the host's network (the only kind that works here: see
tools/image/containers.conf). In it, the operator answers its health probe against the local
control plane, the console serves its page and lists a resource through its API, the gateway
serves a chat completion from the mock, the push gateway answers, the
stream job starts Spark with the connector jars of /opt/tiers/jars (found by itself) and scores
events from the local Kafka, and the batch job scores a file.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ENDPOINT, Kubectl, http_ok, wait_for
from test_stream_job import Collector, create_topics, produce, reviews

from tiers import devenv
from tiers.devenv import image as tiers_image
from tiers.devenv import processes
from tiers.runtime import mockllm

pytestmark = pytest.mark.integration

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def image() -> str:
    """`tiers:<version>` in podman's store: built unless built from these sources already."""
    return tiers_image.ensure_built()


@pytest.fixture(scope="module")
def mock() -> Iterator[str]:
    with mockllm.running() as url:
        yield url


class Containers:
    """`podman run` as the pods run the image; every container is removed after the test."""

    def __init__(self, image: str, log_dir: pathlib.Path) -> None:
        self.image = image
        self.log_dir = log_dir
        self.names: list[str] = []

    def argv(self, name: str, command: list[str], volumes: dict[str, str]) -> list[str]:
        mounts = [f"--volume={host}:{inside}" for host, inside in volumes.items()]
        return [
            "podman", "run", "--rm", f"--name={name}", "--network=host", "--user=65532:65532",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,size=2g,mode=1777",
            "--cap-drop=all", "--security-opt=no-new-privileges",
            # On the host's network Spark would pick the host's outward address for itself, which
            # its Python workers cannot reach from here (a pod's own address is fine).
            "--env=SPARK_LOCAL_IP=127.0.0.1", *mounts, self.image, *command,
        ]  # fmt: skip

    def start(
        self, name: str, command: list[str], volumes: dict[str, str] | None = None
    ) -> processes.Started:
        unique = f"tiers-test-{name}-{uuid.uuid4().hex[:6]}"
        self.names.append(unique)
        argv = self.argv(unique, command, volumes or {})
        return processes.start(name, argv, log_dir=self.log_dir, env=tiers_image.podman_env())

    def serve(
        self,
        name: str,
        command: list[str],
        *,
        port: int,
        volumes: dict[str, str] | None = None,
        timeout_s: float = 90,
    ) -> str:
        """`start`, then wait until `/healthz` on `port` answers; the base URL."""
        started = self.start(name, command, volumes)
        base = f"http://127.0.0.1:{port}"
        processes.wait_until(
            lambda: http_ok(f"{base}/healthz"),
            what=f"waiting for the {name}",
            timeout_s=timeout_s,
            watch=started,
        )
        return base

    def run(
        self, command: list[str], volumes: dict[str, str] | None = None, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        unique = f"tiers-test-run-{uuid.uuid4().hex[:6]}"
        self.names.append(unique)
        return subprocess.run(
            self.argv(unique, command, volumes or {}), env=tiers_image.podman_env(),
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip

    def remove_all(self) -> None:
        for name in self.names:
            subprocess.run(
                ["podman", "rm", "--force", "--time=5", name], env=tiers_image.podman_env(),
                capture_output=True,
            )  # fmt: skip


@pytest.fixture
def containers(image: str, tmp_path: pathlib.Path) -> Iterator[Containers]:
    running = Containers(image, tmp_path / "logs")
    yield running
    running.remove_all()


# A command run after these words talks to the local control plane through `cluster_credentials`.
WITH_KUBECONFIG = ["env", "KUBECONFIG=/etc/tiers/kube/config"]


@pytest.fixture
def cluster_credentials(kubectl: Kubectl, crds: None, tmp_path: pathlib.Path) -> dict[str, str]:
    """The volume that puts the local control plane's credentials (inlined, readable by the
    container's user) where `WITH_KUBECONFIG` points; the CRDs installed."""
    config_dir = tmp_path / "kube"
    config_dir.mkdir(mode=0o755)
    kubeconfig = config_dir / "config"
    kubeconfig.write_text(kubectl.run("config", "view", "--raw", "--flatten", "--minify").stdout)
    kubeconfig.chmod(0o644)
    return {str(config_dir): "/etc/tiers/kube:ro"}


def post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_tiers_version_says_what_is_inside(containers: Containers) -> None:
    result = containers.run(["tiers", "version", "--json"], timeout_s=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["tiers"] == tiers_image.reference().rsplit(":", 1)[1]
    assert found["python"].startswith("3.11.") and "/opt/tiers/venv/" in found["python"]
    assert '"17.' in found["java"]
    assert found["spark"] == "4.2.0"
    assert found["jars_dir"] == "/opt/tiers/jars"
    assert "spark-sql-kafka-0-10_2.13-4.2.0.jar" in found["jars"]
    assert found["commit"] not in ("", "unknown")


def test_nothing_to_build_with_is_in_the_image(containers: Containers) -> None:
    result = containers.run(
        ["sh", "-c", "for t in pip pip3 gcc cc mvn javac apt-get; do command -v $t; done; "
         "/opt/tiers/venv/bin/python -c 'import pip' 2>/dev/null && echo pip-module; "
         "id -u; touch /opt/tiers/x 2>/dev/null && echo writable; true"],
        timeout_s=60,
    )  # fmt: skip
    # apt-get is Debian's own (essential); what builds software is absent, and the root is
    # read-only to the user the pods run as.
    assert result.stdout.split() == ["/usr/bin/apt-get", "65532"], result.stdout + result.stderr


def test_the_operator_answers_its_health_probe_against_the_control_plane(
    namespace: str, containers: Containers, cluster_credentials: dict[str, str]
) -> None:
    # The operator watches only a namespace of its own, beside the session's operator.
    health, metrics = processes.free_port(), processes.free_port()
    containers.serve(
        "operator",
        [*WITH_KUBECONFIG, "python", "-m", "tiers.operator",
         "--health-port", str(health), "--metrics-port", str(metrics),
         "--no-leader-election", f"--namespace={namespace}"],
        port=health, volumes=cluster_credentials, timeout_s=120,
    )  # fmt: skip
    assert http_ok(f"http://127.0.0.1:{metrics}/metrics")


def test_the_console_serves_its_page_and_api(
    kubectl: Kubectl, namespace: str, containers: Containers, cluster_credentials: dict[str, str]
) -> None:
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    port = processes.free_port()
    base = containers.serve(
        "console",
        [*WITH_KUBECONFIG, "python", "-m", "tiers.console",
         "--host", "127.0.0.1", "--port", str(port), "--allow-anonymous-read"],
        port=port, volumes=cluster_credentials,
    )  # fmt: skip
    with urllib.request.urlopen(f"{base}/", timeout=10) as response:
        page = response.read().decode()
    assert '<div id="root">' in page, "the page the image's frontend build holds"
    listing = f"{base}/api/v1/resources?namespace={namespace}"
    with urllib.request.urlopen(listing, timeout=30) as response:
        listed = json.loads(response.read())
    assert [(item["kind"], item["name"]) for item in listed["items"]] == [
        ("RealtimeEndpoint", "chat")
    ]


def test_the_gateway_and_the_push_gateway_serve(
    dev_cluster: devenv.DevCluster, mock: str, containers: Containers
) -> None:
    port, push_port = processes.free_port(), processes.free_port()
    base = containers.serve(
        "gateway",
        ["python", "-m", "tiers.runtime.gateway", "--port", str(port),
         "--backend", f"openai-compatible={mock}"],
        port=port,
    )  # fmt: skip
    completion: dict[str, Any] = post_json(f"{base}/v1/chat/completions", CHAT)
    assert completion["choices"][0]["message"]["content"]
    assert completion["usage"]["prompt_tokens"] > 0
    containers.serve(
        "push-gateway",
        ["python", "-m", "tiers.runtime.stream", "push", "--port", str(push_port),
         "--bootstrap", dev_cluster.kafka_bootstrap, "--input", "in", "--output", "out"],
        port=push_port,
    )  # fmt: skip


def test_the_stream_job_scores_events_from_kafka_with_the_images_connector(
    dev_cluster: devenv.DevCluster, mock: str, containers: Containers
) -> None:
    bootstrap = dev_cluster.kafka_bootstrap
    topics = create_topics(bootstrap)
    results = Collector(bootstrap, topics["out"])
    events = reviews(0, 40)
    produce(bootstrap, topics["in"], events)
    job = containers.start(
        "stream-job",
        ["python", "-m", "tiers.runtime.stream", "job", "--bootstrap", bootstrap,
         "--input", topics["in"], "--output", topics["out"], "--dead-letter", topics["dlq"],
         "--backend", f"openai-compatible={mock}", "--prompt", "Summarize: {text}",
         "--checkpoint", "/tmp/checkpoint", "--trigger-ms", "500"],
    )  # fmt: skip
    try:
        wanted = {key for key, _ in events}

        def all_scored() -> bool:
            if not processes.is_alive(job.pid):
                raise AssertionError(f"the stream job exited:\n{processes.tail(job.log, 40)}")
            return wanted <= results.keys()

        try:
            wait_for(all_scored, timeout_s=240, what="every event scored by the job in the image")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{processes.tail(job.log, 60)}") from None
    finally:
        results.close()
    scored = {record["key"]: record for record in results.records}
    assert all(scored[key]["status"] == "ok" for key in wanted), list(scored.values())[:3]


def test_the_batch_job_scores_a_file(
    mock: str, containers: Containers, tmp_path: pathlib.Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o777)  # the container's user writes the output next to the input
    lines = [json.dumps({"id": f"t{i}", "text": f"ticket {i}"}) for i in range(25)]
    (data / "tickets.jsonl").write_text("\n".join(lines) + "\n")
    result = containers.run(
        ["python", "-m", "tiers.runtime.batch", "run", "--input", "/data/tickets.jsonl",
         "--output", "/data/out", "--backend", f"openai-compatible={mock}",
         "--prompt", "Classify: {text}"],
        {str(data): "/data"}, timeout_s=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["state"], summary["done"], summary["failed"]) == ("Succeeded", 25, 0)
    written = [
        json.loads(line)
        for part in (data / "out").glob("attempt=*/outcome=ok/part-*")
        for line in part.read_text().splitlines()
    ]
    assert sorted(record["id"] for record in written) == sorted(f"t{i}" for i in range(25))
