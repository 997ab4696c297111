"""The console's backend against the real apiserver: lists, the SSE watch, a resource's detail
and series, and the caller's own identity passed through (a token without rights is refused
what the console's own account could read)."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Kubectl, wait_for

from tiers import devenv
from tiers.devenv import processes

pytestmark = pytest.mark.integration

ENDPOINT: dict[str, Any] = {
    "apiVersion": "tiers.dev/v1alpha1",
    "kind": "RealtimeEndpoint",
    "metadata": {"name": "chat"},
    "spec": {
        "model": "gpt-4o-mini",
        "backends": [
            {"name": "primary", "provider": "openai-compatible", "model": "gpt-4o-mini",
             "baseURL": "http://mockllm:9001/v1"},
        ],
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def console(
    dev_cluster: devenv.DevCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`python -m tiers.console` with the admin's kubeconfig and --allow-anonymous-read (as the
    demo runs it); no frontend build."""
    work = tmp_path_factory.mktemp("console")
    port = processes.free_port()
    started = processes.start(
        "console",
        [sys.executable, "-m", "tiers.console", "--port", str(port), "--host", "127.0.0.1",
         "--allow-anonymous-read", "--frontend-dir", str(work / "dist"),
         "--series-file", str(work / "series.json")],
        log_dir=work,
        env={**os.environ, **dev_cluster.env()},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        # Just after the CRDs are established the apiserver may still answer 429 for them.
        processes.wait_until(
            lambda: _get(url + "/api/v1/resources")[0] == 200, what="the console", timeout_s=30,
            watch=started,
        )  # fmt: skip
        yield url
    finally:
        processes.stop(started.pid)


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            body = r.read()
            kind = r.headers.get("content-type", "")
            return r.status, json.loads(body) if "json" in kind else body.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _token_of(kubectl: Kubectl, namespace: str, account: str) -> str:
    kubectl.run("create", "serviceaccount", account, "-n", namespace)
    return kubectl.run("create", "token", account, "-n", namespace).stdout.strip()


def _watch(url: str, received: queue.Queue[tuple[str, dict[str, Any]]]) -> None:
    with urllib.request.urlopen(url, timeout=60) as stream:
        event = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                received.put((event, json.loads(line[6:])))


def test_the_watch_streams_each_resource_and_its_changes(
    console: str, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    threading.Thread(
        target=_watch, args=(f"{console}/api/v1/watch?namespace={namespace}", received), daemon=True
    ).start()
    event, summary = received.get(timeout=20)
    assert event == "upsert"
    assert (summary["kind"], summary["namespace"], summary["name"]) == (
        "RealtimeEndpoint",
        namespace,
        "chat",
    )
    assert summary["ready"] == "Unknown"

    status = {"status": {
        "requestsPerSecond": 4, "errors": 0,
        "conditions": [{"type": "Ready", "status": "False", "reason": "NoReadyReplicas",
                        "message": "0/2 replicas ready", "lastTransitionTime": "2026-11-30T11:00:00Z"}],
        "latency": {"p50Ms": 3, "p95Ms": 9, "p99Ms": 14, "window": "5m",
                    "observedAt": "2026-11-30T11:59:00Z"},
        "traffic": {"requests": 40, "requestsPerSecond": 4, "errors": 2},
    }}  # fmt: skip
    kubectl.run("patch", "rte", "chat", "-n", namespace, "--subresource=status",
                "--type=merge", "-p", json.dumps(status))  # fmt: skip
    event, summary = received.get(timeout=20)
    assert (event, summary["ready"], summary["reason"]) == ("upsert", "False", "NoReadyReplicas")
    assert summary["latency"]["p95Ms"] == 9

    kubectl.run("delete", "rte", "chat", "-n", namespace)
    while (found := received.get(timeout=20))[0] != "delete":
        pass
    assert found[1]["name"] == "chat"


def test_a_resource_reads_with_its_yaml_events_and_series(
    console: str, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    status, listed = _get(f"{console}/api/v1/resources?namespace={namespace}")
    assert status == 200
    assert [item["name"] for item in listed["items"]] == ["chat"]
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "chat.1", "namespace": namespace},
        "involvedObject": {"apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint",
                           "name": "chat", "namespace": namespace,
                           "uid": listed["items"][0]["uid"]},
        "type": "Warning", "reason": "BackendFailing", "message": "primary answers 503",
        "count": 2, "lastTimestamp": "2026-11-30T11:58:00Z",
    }  # fmt: skip
    kubectl.apply(json.dumps(event), namespace=namespace)
    for minute, p95 in ((57, 9), (58, 12)):
        status_patch = {"status": {"requestsPerSecond": 1, "errors": 0, "latency": {
            "p50Ms": 3, "p95Ms": p95, "p99Ms": 20, "window": "5m",
            "observedAt": f"2099-01-01T11:{minute}:00Z"}}}  # fmt: skip
        kubectl.run("patch", "rte", "chat", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps(status_patch))  # fmt: skip

    status, detail = _get(f"{console}/api/v1/resources/realtimeendpoints/{namespace}/chat")
    assert status == 200
    assert detail["object"]["spec"]["model"] == "gpt-4o-mini"
    assert "managedFields" not in detail["object"]["metadata"]
    assert "model: gpt-4o-mini" in detail["yaml"]
    assert [(e["reason"], e["count"]) for e in detail["events"]] == [("BackendFailing", 2)]

    # The points are dated in the future so that every range holds them: the ring is time-bounded.
    def charted() -> list[int]:
        _, found = _get(
            f"{console}/api/v1/resources/realtimeendpoints/{namespace}/chat/series?range=15m"
        )
        return [point["p95Ms"] for point in found["points"]]

    assert wait_for(
        lambda: charted() == [9, 12] and charted(), timeout_s=20, what="two series points"
    )

    status, missing = _get(f"{console}/api/v1/resources/realtimeendpoints/{namespace}/nothing")
    assert status == 404
    assert (
        missing["error"]["message"] == f"no RealtimeEndpoint 'nothing' in namespace '{namespace}'"
    )
    status, wrong = _get(f"{console}/api/v1/resources/widgets/{namespace}/chat")
    assert status == 404 and "realtimeendpoints" in wrong["error"]["message"]


def test_the_callers_token_is_passed_through_never_a_wider_identity(
    console: str, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    # Without a token the console (started with --allow-anonymous-read) reads with its own account.
    status, listed = _get(f"{console}/api/v1/resources?namespace={namespace}")
    assert (status, len(listed["items"])) == (200, 1)

    nobody = _token_of(kubectl, namespace, "nobody")
    for path in (f"resources?namespace={namespace}", f"watch?namespace={namespace}",
                 f"resources/realtimeendpoints/{namespace}/chat",
                 f"resources/realtimeendpoints/{namespace}/chat/series"):  # fmt: skip
        status, refused = _get(f"{console}/api/v1/{path}", nobody)
        assert status == 403, path
        assert f"system:serviceaccount:{namespace}:nobody" in refused["error"]["message"]
        assert refused["error"]["reason"] == "Forbidden"

    reader = _token_of(kubectl, namespace, "reader")
    kubectl.run("create", "role", "tiers-reader", "-n", namespace, "--verb=get,list,watch",
                "--resource=realtimeendpoints.tiers.dev,streampipelines.tiers.dev,"
                "batchjobs.tiers.dev,events")  # fmt: skip
    kubectl.run("create", "rolebinding", "tiers-reader", "-n", namespace, "--role=tiers-reader",
                f"--serviceaccount={namespace}:reader")  # fmt: skip
    status, listed = _get(f"{console}/api/v1/resources?namespace={namespace}", reader)
    assert (status, [item["name"] for item in listed["items"]]) == (200, ["chat"])
    # ... in its namespace only.
    status, _ = _get(f"{console}/api/v1/resources", reader)
    assert status == 403

    status, bad = _get(f"{console}/api/v1/resources", "not-a-token")
    assert status == 401 and bad["error"]["reason"] == "Unauthorized"


def test_a_page_says_how_to_build_the_frontend_when_it_is_not_built(console: str) -> None:
    try:
        urllib.request.urlopen(console + "/", timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 503
        assert "npm run build" in error.read().decode()
        assert error.headers["cache-control"] == "no-store"
    else:
        pytest.fail("an unbuilt frontend must not answer 200")
