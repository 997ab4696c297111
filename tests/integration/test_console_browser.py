"""The console in a browser: the built frontend (frontend/dist, `make frontend`) served by the real
console backend over the real apiserver, driven through Debian's Chromium by the playwright-core
scenarios in frontend/browser/run.mjs. Screenshots go to frontend/test-results/ (printed): the
overview, each kind's list, a detail page, the overview with a failing resource, after a watch
outage, and with 200; the playground after a reply and its replay; the batch page once started and
once completed; the stream live view with results and a dead letter.
Tests that set statuses by hand run on `quiet_cluster`, where no operator rewrites them."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from conftest import (
    ENDPOINT,
    ROOT,
    Kubectl,
    Processes,
    live_pipeline,
    start_console,
    upload_job,
    wait_for,
)

from tiers import devenv
from tiers.devenv import processes
from tiers.runtime.modelcall import results
from tiers.runtime.stream import events

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

        def outage() -> None:
            nonlocal started
            processes.stop(started.pid, grace_s=1)  # its open streams would hold a clean stop
            kubectl.run("delete", "bjob", "ticket-triage", "-n", namespace)
            port = int(url.rsplit(":", 1)[1])
            _, started = start_console(dev_cluster, kubectl, tmp_path, "--frontend-dir", str(DIST),
                                       port=port)  # fmt: skip

        # No delete event reaches a page whose watch was down: the list it gets on reconnecting
        # (and the synced event that ends it) is what removes the card.
        after = browse("outage", url, "--name", "ticket-triage", steps=(outage,))
        assert after["cards"] == 2, after
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
    kubectl.apply(json.dumps(upload_job(root)), namespace=namespace)
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)  # the model the estimate prices
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        "".join(json.dumps({"id": i, "body": f"ticket {i}"}) + "\n" for i in range(5))
    )
    # The person at the page: reads every namespace's resources (the overview's watch), may
    # upload to, start and (deleting and creating it) re-run this job.
    kubectl.run("create", "serviceaccount", "writer", "-n", namespace)
    kubectl.run("create", "clusterrole", "reader", "--verb=get,list,watch",
                "--resource=batchjobs.tiers.dev,realtimeendpoints.tiers.dev,"
                "streampipelines.tiers.dev,events,namespaces")  # fmt: skip
    kubectl.run("create", "clusterrolebinding", "reader", "--clusterrole=reader",
                f"--serviceaccount={namespace}:writer")  # fmt: skip
    kubectl.run("create", "role", "writer", "-n", namespace,
                "--verb=get,list,watch,update,patch,delete,create",
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

    first_uid = kubectl.get("bjob", "scores", "-n", namespace)["metadata"]["uid"]
    try:
        batch = browse("batch", url, "--namespace", namespace, "--name", "scores",
                       "--file", str(tickets), steps=(run_to_completion,), token=writer)  # fmt: skip
        assert batch["upload"].startswith("Uploaded 5 records")
        assert "$2.00" in batch["estimate"], "the budget is shown beside the estimate"
        # Before the run: 5 replies of at most 256 tokens at gpt-4o-mini's $0.60/M, and prompts.
        cost = batch["estimate"].split("Estimated cost (upper bound)$")[1].split("Budget")[0]
        assert 5 * 256 * 0.6e-6 < float(cost) < 0.001, batch["estimate"]
        assert batch["progress"] == "100"
        downloaded = pathlib.Path(batch["download"]).read_text().splitlines()
        assert [json.loads(line)["id"] for line in downloaded] == list(range(5))
        # "Run again" on the finished one-off job: the same job created anew, unsuspended.
        assert not batch["alerts"], batch["alerts"]

        def made_anew() -> dict[str, Any] | None:
            # The page stops showing "succeeded" once the old job is deleted, before the console
            # has created the new one.
            found = kubectl.run("get", "bjob", "scores", "-n", namespace, "-o", "json",
                                "--ignore-not-found").stdout  # fmt: skip
            job = json.loads(found) if found.strip() else None
            return job if job and job["metadata"]["uid"] != first_uid else None

        again = wait_for(made_anew, timeout_s=60, what="the job created anew")
        assert again["spec"]["suspend"] is False
        assert again["spec"]["budget"] == {"maxUSD": "2"} and "status" not in again
    finally:
        processes.stop(started.pid)


class Relay:
    """The pipeline's part, in a thread: each event of the input topic scored by the mock model
    (one chat completion) and its result record written to the output topic, or, lacking the
    `text` its prompt reads, a dead letter, both as tiers.runtime.stream.events renders them.
    (The Spark job itself is test_stream_job.py's; this test is about the page.)"""

    def __init__(self, bootstrap: str, topics: dict[str, str], model: str) -> None:
        self.topics, self.model = topics, model
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                                  "auto.offset.reset": "earliest"})  # fmt: skip
        self.consumer.subscribe([topics["in"]])
        self.producer = Producer({"bootstrap.servers": bootstrap})
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.is_set():
            message = self.consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            key, value = message.key(), message.value()
            event = events.Event(key.decode() if key else None, value.decode() if value else None,
                                 message.partition(), message.offset(), message.timestamp()[1])  # fmt: skip
            now = int(time.time() * 1000)
            text = json.loads(event.value or "{}").get("text")
            if not isinstance(text, str):
                self.producer.produce(self.topics["dlq"], key=key, value=events.dead_letter_record(
                    event, reason="invalid_event", error="no field 'text'", attempts=0, now_ms=now))  # fmt: skip
            else:
                self.producer.produce(self.topics["out"], key=key, value=self.score(event, text))
            self.producer.flush(5)

    def score(self, event: events.Event, text: str) -> bytes:
        started = time.monotonic()
        question = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        request = urllib.request.Request(self.model + "/v1/chat/completions",
                                         data=json.dumps(question).encode(),
                                         headers={"content-type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            reply = json.loads(answer.read())
        usage = reply["usage"]
        result = results.RowResult(
            key=event.id, status="ok", output=reply["choices"][0]["message"]["content"],
            error=None, attempts=1, latency_ms=round((time.monotonic() - started) * 1000),
            tokens_in=usage["prompt_tokens"], tokens_out=usage["completion_tokens"],
            cost_usd="0.000004", finish_reason="stop",
        )  # fmt: skip
        return events.result_record(event, result, now_ms=int(time.time() * 1000))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.consumer.close()


def test_sample_events_sent_from_the_live_view_come_back_as_results_and_poison_as_a_dead_letter(
    dev_cluster: devenv.DevCluster, crds: None, kubectl: Kubectl, namespace: str,
    services: Processes, tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    """Real Kafka and the real push gateway; no status is set by hand, so the session's
    control plane serves."""
    topics, pipeline = live_pipeline(dev_cluster.kafka_bootstrap, "live")
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    push = services.start(
        "push", "tiers.runtime.stream", "push", "--bootstrap", dev_cluster.kafka_bootstrap,
        "--input", topics["in"], "--output", topics["out"],
    )  # fmt: skip
    kubectl.apply(json.dumps(pipeline), namespace=namespace)
    in_cluster = f"http://reviews-push.{namespace}.svc:8086"
    url, started = start_console(dev_cluster, kubectl, tmp_path, "--frontend-dir", str(DIST),
                                 "--url-override", f"{in_cluster}={push}")  # fmt: skip
    relay = Relay(dev_cluster.kafka_bootstrap, topics, mock)
    try:
        live = browse("live", url, "--namespace", namespace, "--name", "reviews")
        assert live["first"][0].startswith("sample-"), live["first"]
        assert live["first"][1] == "ok" and live["first"][2], live["first"]
        assert int(live["received"].removeprefix("Results received")) >= 10
        assert (
            live["deadLetter"][0].startswith("poison-") and live["deadLetter"][1] == "invalid_event"
        )
    finally:
        relay.stop()
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
