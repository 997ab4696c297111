"""Session fixtures: the real local control plane (the code behind `tiers dev up`), the CRDs and
the operator as a real process. On a failure the tail of every component's log is reported."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tiers import devenv
from tiers.devenv import processes

ROOT = pathlib.Path(__file__).resolve().parents[2]
_LOGS: list[pathlib.Path] = []


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


@pytest.fixture(scope="session")
def kubectl(dev_cluster: devenv.DevCluster) -> Kubectl:
    return Kubectl(dev_cluster)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(ROOT / "crds"))
    kubectl.run(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=tiers",
        "--timeout=30s",
    )


@pytest.fixture(scope="session")
def operator(
    dev_cluster: devenv.DevCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`python -m tiers.operator` as its own process; yields the URL of its metrics."""
    log_dir = tmp_path_factory.mktemp("operator")
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
        env={**os.environ, **dev_cluster.env(), "TIERS_RECHECK_SECONDS": "5"},
    )
    _LOGS.append(started.log)
    try:
        processes.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"),
            what="waiting for the operator's liveness endpoint",
            timeout_s=60,
            watch=started,
        )
        yield f"http://127.0.0.1:{metrics}/metrics"
    finally:
        processes.stop(started.pid)


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    words = "".join(
        c if c.isalnum() else "-" for c in request.node.name.lower().removeprefix("test_")
    )
    name = f"t-{words[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


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


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _LOGS:
        tails = "\n".join(f"--- {log.name} ---\n{processes.tail(log, 25)}" for log in _LOGS)
        report.sections.append(("component logs (tail)", tails))
    return report
