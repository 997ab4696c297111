"""The console in a browser: the built frontend (frontend/dist, `make frontend`) served by the real
console backend over the real apiserver, driven through Debian's Chromium by the playwright-core
scenarios in frontend/browser/run.mjs. Screenshots go to frontend/test-results/ (printed): the
overview, each kind's list, a detail page, the overview with a failing resource, and with 200;
the playground after a reply and its replay; the batch page once started and once completed.
Tests that set statuses by hand run on `quiet_cluster`, where no operator rewrites them."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, Kubectl, Processes
from test_console import ENDPOINT, start_console

from tiers import devenv
from tiers.devenv import processes

pytestmark = pytest.mark.integration

FRONTEND = pathlib.Path(__file__).resolve().parents[2] / "frontend"
DIST = FRONTEND / "dist"
SHOTS = FRONTEND / "test-results"


@pytest.fixture(autouse=True)
def _browser_ready() -> None:
    if not (DIST / "index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make frontend` (make test does)")
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir() or not shutil.which("chromium"):
        pytest.fail("needs `npm ci` in frontend/ and Debian's chromium (make test installs both)")
    SHOTS.mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def quiet_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devenv.DevCluster]:
    """A control plane of this module's own, with the CRDs and no operator: the statuses a test
    sets stay as it set them (the session's operator, once started, would rewrite them)."""
    state_dir = tmp_path_factory.mktemp("quiet-cluster")
    cluster = devenv.up(state_dir, nodes=1, redis=False, kafka=False, with_helm=False)
    try:
        kubectl = Kubectl(cluster)
        kubectl.run("apply", "-f", str(ROOT / "crds"))
        kubectl.run("wait", "--for=condition=Established", "crd",
                    "-l", "app.kubernetes.io/part-of=tiers", "--timeout=60s")  # fmt: skip
        yield cluster
    finally:
        devenv.down(state_dir)


def browse(
    scenario: str, url: str, *args: str, steps: tuple[Any, ...] = (), token: str = ""
) -> dict[str, Any]:
    """Runs one scenario (signed in with `token` where it acts as a user); for each
    `{"waiting": ...}` line it prints, calls the next of `steps` and tells it to go on. Returns
    its result line."""
    command = ["node", "browser/run.mjs", scenario, "--base", url, "--out", str(SHOTS), *args]
    env = {**os.environ, "CONSOLE_TOKEN": token}
    with subprocess.Popen(
        command, cwd=FRONTEND, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as node:
        assert node.stdout is not None and node.stdin is not None
        pending = list(steps)
        result: dict[str, Any] = {}
        try:
            for line in node.stdout:
                message = json.loads(line)
                if "waiting" in message:
                    pending.pop(0)()
                    node.stdin.write("go\n")
                    node.stdin.flush()
                else:
                    result = message
            node.wait(timeout=120)
        finally:
            # a step that failed leaves the browser waiting for its answer
            if node.poll() is None:
                node.kill()
    assert result.get("ok"), result.get("error", result)
    print(f"{scenario}: {json.dumps({k: v for k, v in result.items() if k != 'scripts'})}")
    return result


def _status(kubectl: Kubectl, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
    kubectl.run("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}))  # fmt: skip


def _ready(status: str, reason: str, message: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message,
                        "lastTransitionTime": now}],
        "latency": {"p50Ms": 3, "p95Ms": 9, "p99Ms": 14, "window": "5m", "observedAt": now},
                "cost": {"totalUSD": "0.001200", "perRequestUSD": "0.000300", "window": "5m",
                 "observedAt": now},
    }  # fmt: skip


def test_the_overview_shows_each_resource_with_its_status_and_a_failure_within_seconds(
    quiet_cluster: devenv.DevCluster, tmp_path: pathlib.Path
) -> None:
    dev_cluster, kubectl, namespace = quiet_cluster, Kubectl(quiet_cluster), "browser"
    kubectl.run("create", "namespace", namespace)
    examples = FRONTEND.parent / "examples"
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    kubectl.apply(
        (examples / "02-stream" / "stream-pipeline.yaml").read_text(), namespace=namespace
    )
    kubectl.apply((examples / "03-batch" / "spark-batch-job.yaml").read_text(), namespace=namespace)
    _status(kubectl, "rte", "chat", namespace, _ready("True", "Ready", "2/2 replicas ready"))
    url, started = start_console(dev_cluster, kubectl, tmp_path, "--frontend-dir", str(DIST))
    try:
        shown = browse(
            "overview", url, "--namespace", namespace,
            "--expect", "chat:ok,review-summaries:progressing,ticket-triage:progressing",
            "--detail", "realtimeendpoints/chat",
        )  # fmt: skip
        assert shown["cards"] == 3
        # The first load's JavaScript, gzipped (issue 12: at most 300 KB).
        assert 0 < shown["jsGzipBytes"] <= 300 * 1024, shown["scripts"]

        def fail() -> None:
            _status(kubectl, "rte", "chat", namespace,
                    _ready("False", "Unavailable", "no backend answers: primary 503"))  # fmt: skip

        turned = browse("unhealthy", url, "--name", "chat", steps=(fail,))
        assert turned["seconds"] < 10
        assert "no backend answers" in turned["message"]
    finally:
        processes.stop(started.pid)


def test_the_playground_streams_a_reply_with_its_cost_and_the_replay_is_a_cache_hit(
    quiet_cluster: devenv.DevCluster, services: Processes, redis_server: Any,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    dev_cluster, kubectl, namespace = quiet_cluster, Kubectl(quiet_cluster), "playground"
    kubectl.run("create", "namespace", namespace)
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    gateway = services.start("gateway", "tiers.runtime.gateway",
                             "--backend", f"openai-compatible={mock}/v1", "--redis", redis_server.url)  # fmt: skip
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    in_cluster = f"http://chat-gateway.{namespace}.svc:8080/v1"
    _status(kubectl, "rte", "chat", namespace,
            {**_ready("True", "Ready", "ready"), "url": in_cluster})  # fmt: skip
    url, started = start_console(dev_cluster, kubectl, tmp_path, "--frontend-dir", str(DIST),
                                 "--url-override", f"{in_cluster}={gateway}/v1")  # fmt: skip
    try:
        chat = browse("chat", url, "--namespace", namespace, "--name", "chat")
        assert chat["firstText"].strip()
        assert chat["caches"] == ["cache miss", "cache hit"]
        first, replay = (float(cost.removeprefix("cost $")) for cost in chat["costs"])
        assert first > 0 == replay, chat["costs"]
    finally:
        processes.stop(started.pid)


def test_a_small_batch_upload_ends_in_a_completed_job_with_a_downloadable_result(
    quiet_cluster: devenv.DevCluster, tmp_path: pathlib.Path
) -> None:
    dev_cluster, kubectl, namespace = quiet_cluster, Kubectl(quiet_cluster), "batch"
    kubectl.run("create", "namespace", namespace)
    root = tmp_path / "batch"
    job = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "scores"},
        "spec": {
            "engine": "spark", "suspend": True,
            "input": {"uri": (root / "in" / "tickets.jsonl").as_uri(), "format": "jsonl"},
            "output": {"uri": (root / "out").as_uri()},
            "model": {"endpointRef": {"name": "chat"}, "prompt": "Classify: {body}"},
            "budget": {"maxUSD": "2"},
        },
    }  # fmt: skip
    kubectl.apply(json.dumps(job), namespace=namespace)
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        "".join(json.dumps({"id": i, "body": f"ticket {i}"}) + "\n" for i in range(5))
    )
    # The person at the page: reads every namespace's resources (the overview's watch), may
    # upload to and start this job.
    kubectl.run("create", "serviceaccount", "writer", "-n", namespace)
    kubectl.run("create", "clusterrole", "reader", "--verb=get,list,watch",
                "--resource=batchjobs.tiers.dev,realtimeendpoints.tiers.dev,"
                "streampipelines.tiers.dev,events,namespaces")  # fmt: skip
    kubectl.run("create", "clusterrolebinding", "reader", "--clusterrole=reader",
                f"--serviceaccount={namespace}:writer")  # fmt: skip
    kubectl.run("create", "role", "writer", "-n", namespace, "--verb=get,list,watch,update,patch",
                "--resource=batchjobs.tiers.dev")  # fmt: skip
    kubectl.run("create", "rolebinding", "writer", "-n", namespace, "--role=writer",
                f"--serviceaccount={namespace}:writer")  # fmt: skip
    writer = kubectl.run("create", "token", "writer", "-n", namespace).stdout.strip()
    url, started = start_console(dev_cluster, kubectl, tmp_path, "--frontend-dir", str(DIST),
                                 "--batch-root", str(root))  # fmt: skip

    def run_to_completion() -> None:
        # This test has no operator or Spark: what a run leaves (its results and its status)
        # is written here, as tiers.runtime.batch and the operator would.
        assert kubectl.get("bjob", "scores", "-n", namespace)["spec"]["suspend"] is False
        folder = root / "out" / "attempt=1" / "outcome=ok"
        folder.mkdir(parents=True)
        (folder / "part-0").write_text("".join(
            json.dumps({"id": i, "output": "billing", "status": "ok"}) + "\n" for i in range(5)))  # fmt: skip
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _status(kubectl, "bjob", "scores", namespace, {
            "observedGeneration": 2, "state": "Succeeded",
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded",
                            "message": "run scores-1: 5 records", "lastTransitionTime": now}],
            "progress": {"total": 5, "done": 5, "failed": 0, "percent": 100},
        })  # fmt: skip

    try:
        batch = browse("batch", url, "--namespace", namespace, "--name", "scores",
                       "--file", str(tickets), steps=(run_to_completion,), token=writer)  # fmt: skip
        assert batch["upload"].startswith("Uploaded 5 records")
        assert "$2.00" in batch["estimate"], "the budget is shown beside the estimate"
        assert batch["progress"] == "100"
        downloaded = pathlib.Path(batch["download"]).read_text().splitlines()
        assert [json.loads(line)["id"] for line in downloaded] == list(range(5))
    finally:
        processes.stop(started.pid)


def test_the_overview_stays_interactive_with_200_resources(tmp_path: pathlib.Path) -> None:
    """The page's own cost, so the 200 summaries come from the browser (page.route), not an
    apiserver; figures beside a 3-resource baseline in the same run (the machine is shared)."""
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(DIST)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split("port ")[1].split()[0]
        figures = browse("perf200", f"http://127.0.0.1:{port}")
        assert figures["resources"] == 200
        # A keystroke paints within a second, and no task blocks the page for one, even on a
        # loaded 2-core machine.
        assert sorted(figures["inputToPaintMs"])[len(figures["inputToPaintMs"]) // 2] < 1000, (
            figures
        )
        assert figures["longestTaskMs"] < 1000, figures
    finally:
        server.terminate()
        server.wait(timeout=10)
