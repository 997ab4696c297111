"""Session fixtures: the real local control plane (the code behind `tiers dev up`), the CRDs and
the operator as a real process. On a failure the tail of every component's log is reported."""

from __future__ import annotations

import json
import os
import pathlib
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from tiers import devenv
from tiers.devenv import processes, samples, spark_operator, toolchain
from tiers.devenv import redis_server as redis_server_module
from tiers.operator.manifests import spark_application

ROOT = pathlib.Path(__file__).resolve().parents[2]
_LOGS: list[pathlib.Path] = []  # the session's control plane and operator
_TEST_LOGS: dict[str, list[pathlib.Path]] = {}  # by test id: what the test started itself
ALLOWED_SPARK_IMAGES = "registry.test/spark/*"
LOOPBACK_ALLOWED = {"TIERS_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
"""The tests' webhook receivers and Databricks workspace listen on loopback (chart value
notifications.allowedNetworks): an operator started by a test refuses to call them otherwise."""


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devenv.DevCluster]:
    state_dir = tmp_path_factory.mktemp("tiers-dev")
    cluster = devenv.up(state_dir, nodes=3, with_helm=False)
    _LOGS.extend(sorted(cluster.log_dir.glob("*.log")))
    try:
        yield cluster
    finally:
        devenv.down(state_dir)


class Kubectl:
    """kubectl against the dev cluster, the way a user runs it."""

    def __init__(self, cluster: devenv.DevCluster) -> None:
        self.binary = str(cluster.kubectl)
        self.env = {**os.environ, **cluster.env()}

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(
        self, manifest: str, *, namespace: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-n", namespace, "-f", "-", stdin=manifest, check=check)

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", "-o", "json", *args).stdout)

    def find(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None where there is none."""
        out = self.run("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out.stdout) if out.stdout.strip() else None


@pytest.fixture(scope="session")
def kubectl(dev_cluster: devenv.DevCluster) -> Kubectl:
    return Kubectl(dev_cluster)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    install_crds(kubectl)


def install_crds(kubectl: Kubectl) -> None:
    """The project's CRDs, applied and established."""
    kubectl.run("apply", "-f", str(ROOT / "crds"))
    kubectl.run(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=tiers",
        "--timeout=30s",
    )


OPERATOR_RELEASE = "tiers"
OPERATOR_NAMESPACE = "tiers-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_RELEASE}"
"""Who the operator is to the apiserver in the tests: the chart's ServiceAccount."""
RBAC_TEMPLATES = (
    "templates/operator-serviceaccount.yaml",
    "templates/operator-clusterrole.yaml",
    "templates/operator-clusterrolebinding.yaml",
    "templates/leader-election-role.yaml",
    "templates/leader-election-rolebinding.yaml",
)


def render_chart(*args: str) -> str:
    """`helm template` of the chart as the release the tests' operator runs as."""
    helm = toolchain.ensure_built(toolchain.HELM) / "helm"
    return subprocess.run(
        [str(helm), "template", OPERATOR_RELEASE, str(ROOT / "charts" / "tiers"),
         "--namespace", OPERATOR_NAMESPACE, "--kube-version", "1.36.0", *args],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def operator_kubeconfig(
    dev_cluster: devenv.DevCluster, kubectl: Kubectl, directory: pathlib.Path
) -> pathlib.Path:
    """A kubeconfig of the chart's ServiceAccount, holding exactly the chart's RBAC: every test
    of the operator also tests that the chart grants what it does (a request it refuses fails
    the test), and test_rbac.py compares what it did with what the chart grants."""
    # Applied: a console started before (console_kubeconfig) may have made it.
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
    kubectl.run("apply", "-f", "-", stdin=json.dumps(namespace))
    rbac = render_chart(*(f"--show-only={template}" for template in RBAC_TEMPLATES))
    kubectl.run("apply", "-f", "-", stdin=rbac)
    token = kubectl.run(
        "create", "token", OPERATOR_RELEASE, "-n", OPERATOR_NAMESPACE, "--duration=48h"
    ).stdout.strip()
    return dev_cluster.token_kubeconfig(token, directory / "kubeconfig")


@pytest.fixture(scope="session")
def operator(
    dev_cluster: devenv.DevCluster,
    kubectl: Kubectl,
    crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """`python -m tiers.operator` as its own process, as the chart's ServiceAccount; yields the
    URL of its metrics."""
    log_dir = tmp_path_factory.mktemp("operator")
    kubeconfig = operator_kubeconfig(dev_cluster, kubectl, log_dir)
    health, metrics = processes.free_port(), processes.free_port()
    started = processes.start(
        "operator",
        [
            sys.executable,
            "-m",
            "tiers.operator",
            "--health-port",
            str(health),
            "--metrics-port",
            str(metrics),
        ],
        log_dir=log_dir,
        env={
            **os.environ,
            **dev_cluster.env(),
            "KUBECONFIG": str(kubeconfig),
            # As the chart's pod has it: where its leader-election Lease lives.
            "TIERS_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
            "TIERS_RECHECK_SECONDS": "3",
            # Local mode: gateways run as local processes and publish stats to the dev Redis.
            "TIERS_STATS_REDIS_URL": dev_cluster.redis_url,
            # A Databricks workspace that does not answer costs a reconcile this long.
            "TIERS_DATABRICKS_RETRY_SECONDS": "5",
            # Images that spec.spark.image may name besides the operator's own (chart value
            # spark.allowedImages); test_workload_policy.py runs one and is refused another.
            "TIERS_SPARK_ALLOWED_IMAGES": ALLOWED_SPARK_IMAGES,
            **LOOPBACK_ALLOWED,
        },
    )
    _LOGS.append(started.log)
    try:
        processes.wait_until(
            lambda: http_ok(f"http://127.0.0.1:{health}/healthz"),
            what="waiting for the operator's liveness endpoint",
            timeout_s=60,
            watch=started,
        )
        yield f"http://127.0.0.1:{metrics}/metrics"
    finally:
        processes.stop(started.pid)


@pytest.fixture(scope="session")
def operator_log(operator: str) -> pathlib.Path:
    """The log file of the session's operator (what it writes to stdout and stderr)."""
    return next(log for log in _LOGS if log.name == "operator.log")


@pytest.fixture
def redis_server(
    tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> Iterator[redis_server_module.RedisServer]:
    """A redis-server of the test's own, so a test may stop it."""
    server = redis_server_module.start(tmp_path / "logs")
    _TEST_LOGS.setdefault(request.node.nodeid, []).append(server.process.log)
    yield server
    server.stop()


class Processes:
    """Starts `python -m <module> ...` services for one test and stops them after it."""

    def __init__(self, log_dir: pathlib.Path, logs: list[pathlib.Path]) -> None:
        self.log_dir = log_dir
        self.logs = logs
        self.started: list[processes.Started] = []

    def start(
        self,
        name: str,
        module: str,
        *args: str,
        health_path: str = "/healthz",
        env: dict[str, str] | None = None,
        tls_ca: pathlib.Path | None = None,
    ) -> str:
        """Starts the module with `--port <free port>` and returns its base URL once healthy;
        `env` is added to this process's environment. With `tls_ca` it serves https, checked
        against that CA, at https://localhost."""
        port = processes.free_port()
        started = processes.start(
            name,
            [sys.executable, "-m", module, *args, "--port", str(port)],
            log_dir=self.log_dir,
            env={**os.environ, **env} if env else None,
        )
        self.started.append(started)
        self.logs.append(started.log)
        url = f"http://127.0.0.1:{port}" if tls_ca is None else f"https://localhost:{port}"
        context = None if tls_ca is None else ssl.create_default_context(cafile=tls_ca)
        processes.wait_until(
            lambda: http_ok(url + health_path, context),
            what=f"waiting for {name}",
            timeout_s=30,
            watch=started,
        )
        return url

    def stop_all(self) -> None:
        for started in reversed(self.started):
            processes.stop(started.pid, grace_s=5)


@pytest.fixture
def test_logs(request: pytest.FixtureRequest) -> list[pathlib.Path]:
    """Logs of what the test started itself: their tails are reported if it fails."""
    return _TEST_LOGS.setdefault(request.node.nodeid, [])


@pytest.fixture
def services(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    running = Processes(tmp_path / "logs", _TEST_LOGS.setdefault(request.node.nodeid, []))
    yield running
    running.stop_all()


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _test_namespace(kubectl, request)


def _test_namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    words = "".join(
        c if c.isalnum() else "-" for c in request.node.name.lower().removeprefix("test_")
    )
    name = f"t-{words[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devenv.DevCluster]:
    """A second control plane, with the CRDs and one kwok node but no Redis or Kafka of its own,
    where the session's operator never runs: for tests whose operators of their own must be
    alone with their objects (the session's operator, once a module has started it, reconciles
    every namespace of `dev_cluster`). test_operator_faults.py restarts its apiserver."""
    state_dir = tmp_path_factory.mktemp("tiers-own")
    cluster = devenv.up(state_dir, nodes=1, redis=False, kafka=False, with_helm=False)
    try:
        install_crds(Kubectl(cluster))
        yield cluster
    finally:
        devenv.down(state_dir)


@pytest.fixture(scope="session")
def own_kubectl(own_cluster: devenv.DevCluster) -> Kubectl:
    return Kubectl(own_cluster)


@pytest.fixture
def own_namespace(own_kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of `own_cluster`, as `namespace` is one of `dev_cluster`."""
    yield from _test_namespace(own_kubectl, request)


def wait_for(
    predicate: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.2
) -> Any:
    """Polls until `predicate` returns something truthy, and returns it."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


def child_events(kubectl: Kubectl, namespace: str, kind: str) -> set[tuple[str, str]]:
    """The operator's Events on resources of `kind` about their children, one (reason, "Kind
    name") per child: it posts one Event per verb, "created ConfigMap a, Deployment b"."""
    events = kubectl.get("events", "-n", namespace, "--field-selector",
                         f"involvedObject.kind={kind}")["items"]  # fmt: skip
    return {
        (event["reason"], child)
        for event in events
        if event["reason"].startswith("Child")
        for child in event["message"].split(" ", 1)[1].split(", ")
    }


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        return bool(response.status == 200)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    logs = _TEST_LOGS.get(item.nodeid, [])
    if "dev_cluster" in getattr(item, "fixturenames", ()):
        logs = [*_LOGS, *logs]
    if report.failed and logs:
        tails = "\n".join(f"--- {log.name} ---\n{processes.tail(log, 25)}" for log in logs)
        report.sections.append(("component logs (tail)", tails))
    return report


# The console (tiers.console) as the chart runs it, and a RealtimeEndpoint to show in it.

ENDPOINT = samples.realtime_endpoint(base_url="http://mockllm:9001/v1")


def live_pipeline(
    bootstrap: str, prefix: str, *, push: dict[str, Any] | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """The console tests' StreamPipeline "reviews" (calling the endpoint "chat") on three new
    topics of the session's Kafka, made here: (the topics by role, the pipeline)."""
    topics = samples.topic_names(f"{prefix}-", f"-{uuid.uuid4().hex[:8]}")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, num_partitions=1) for t in topics.values()]).values():  # fmt: skip
        future.result(10)
    return topics, samples.stream_pipeline(
        "reviews", bootstrap=bootstrap, topics=topics, partitions=None,
        model={"endpointRef": {"name": "chat"}, "prompt": "Summarize: {text}"},
        **({} if push is None else {"push": push}),
    )  # fmt: skip


CONSOLE_RBAC = (
    "templates/console-serviceaccount.yaml",
    "templates/console-clusterrole.yaml",
    "templates/console-clusterrolebinding.yaml",
)
CONSOLE_VALUES = ("--set", "console.enabled=true", "--set", "console.allowAnonymousRead=true")


def console_kubeconfig(
    dev_cluster: devenv.DevCluster, kubectl: Kubectl, directory: pathlib.Path
) -> pathlib.Path:
    """A kubeconfig of the chart's console ServiceAccount, holding exactly the chart's RBAC."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
    kubectl.run("apply", "-f", "-", stdin=json.dumps(namespace))
    rbac = render_chart(*CONSOLE_VALUES, *(f"--show-only={template}" for template in CONSOLE_RBAC))
    kubectl.run("apply", "-f", "-", stdin=rbac)
    token = kubectl.run(
        "create", "token", f"{OPERATOR_RELEASE}-console", "-n", OPERATOR_NAMESPACE
    ).stdout.strip()
    return dev_cluster.token_kubeconfig(token, directory / "kubeconfig")


def start_console(
    dev_cluster: devenv.DevCluster, kubectl: Kubectl, work: pathlib.Path, *args: str,
    port: int | None = None,
) -> tuple[str, processes.Started]:  # fmt: skip
    """`python -m tiers.console` as the chart's console ServiceAccount with
    --allow-anonymous-read, once it lists the three kinds (test_console.py and the browser
    tests, test_console_browser.py)."""
    kubeconfig = console_kubeconfig(dev_cluster, kubectl, work)
    port = port or processes.free_port()
    started = processes.start(
        "console",
        [sys.executable, "-m", "tiers.console", "--port", str(port), "--host", "127.0.0.1",
         "--allow-anonymous-read", "--frontend-dir", str(work / "dist"), *args],
        log_dir=work,
        env={**os.environ, **dev_cluster.env(), "KUBECONFIG": str(kubeconfig)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # Just after the CRDs are established the apiserver may still answer 429 for them.
    processes.wait_until(
        lambda: http_ok(url + "/api/v1/resources"), what="the console", timeout_s=30,
        watch=started,
    )  # fmt: skip
    return url, started


def upload_job(root: pathlib.Path) -> dict[str, Any]:
    """The console's batch upload's subject: a suspended BatchJob "scores" that reads what an
    upload writes (`root/in/tickets.jsonl`) into `root/out`, at most $2 (test_console.py and
    test_console_browser.py)."""
    return {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "scores"},
        "spec": {
            "engine": "spark", "suspend": True,
            "input": {"uri": (root / "in" / "tickets.jsonl").as_uri(), "format": "jsonl"},
            "output": {"uri": (root / "out").as_uri()},
            "model": {"endpointRef": {"name": "chat"}, "prompt": "Classify: {body}"},
            "budget": {"maxUSD": "2"},
        },
    }  # fmt: skip


def remove_spark_operator_crd(kubectl: Kubectl) -> None:
    """The Spark Operator's CRD is cluster-wide: removed (with every SparkApplication) before the
    next test."""
    kubectl.run(
        "delete", "crd", spark_application.CRD_NAME, "--ignore-not-found", "--wait",
        "--timeout=60s",
    )  # fmt: skip


@pytest.fixture
def spark_operator_crd(kubectl: Kubectl) -> Iterator[None]:
    """The Kubeflow Spark Operator's real SparkApplication CRD (no controller runs: tests write
    the status it would)."""
    crd = spark_operator.sparkapplication_crd()
    # Server-side: the CRD is too large for client-side apply's last-applied annotation.
    kubectl.run("apply", "--server-side", "--field-manager=tiers-tests", "-f", str(crd))
    try:
        # Not `kubectl wait`: it fails outright while the new CRD has no conditions at all.
        wait_for(
            lambda: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in kubectl.get("crd", spark_application.CRD_NAME).get("status", {}).get(
                    "conditions") or ()
            ),
            timeout_s=30,
            what=f"{spark_application.CRD_NAME} to be established",
        )  # fmt: skip
        yield
    finally:
        remove_spark_operator_crd(kubectl)


class Collector:
    """Reads a topic from the beginning in a thread, keeping every record (a JSON object), its
    headers and when it arrived, in ms since the epoch."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[dict[str, Any]] = []
        self.headers: list[dict[str, bytes]] = []
        self.arrived_ms: list[int] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is not None and not message.error():
                self.arrived_ms.append(int(time.time() * 1000))
                self.headers.append(dict(message.headers() or ()))
                self.records.append(json.loads(message.value()))

    def keys(self) -> set[str]:
        return {record["key"] for record in list(self.records)}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
