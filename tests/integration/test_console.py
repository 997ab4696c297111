"""The console's backend against the real apiserver: lists, the SSE watch, a resource's detail
and series, and the caller's own identity passed through (a token without rights is refused
what the console's own account could read)."""

from __future__ import annotations

import http.client
import json
import pathlib
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from conftest import (
    ENDPOINT,
    Kubectl,
    Processes,
    live_pipeline,
    start_console,
    upload_job,
    wait_for,
)

from tiers import devenv
from tiers.devenv import processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def console(
    dev_cluster: devenv.DevCluster, kubectl: Kubectl, crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:  # fmt: skip
    """The console with no frontend build, keeping its series in a file."""
    work = tmp_path_factory.mktemp("console")
    url, started = start_console(
        dev_cluster, kubectl, work, "--series-file", str(work / "series.json")
    )
    try:
        yield url
    finally:
        processes.stop(started.pid)


def _call(
    url: str, token: str | None = None, *, body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    headers = dict(headers or {})
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        headers.setdefault("content-type", "application/json")
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            raw = r.read()
            kind = r.headers.get("content-type", "")
            found = {k.lower(): v for k, v in r.headers.items()}
            return (
                r.status,
                found,
                json.loads(raw) if kind == "application/json" else raw.decode(errors="replace"),
            )
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    status, _, body = _call(url, token)
    return status, body


def _token_of(kubectl: Kubectl, namespace: str, account: str) -> str:
    kubectl.run("create", "serviceaccount", account, "-n", namespace)
    return kubectl.run("create", "token", account, "-n", namespace).stdout.strip()


def _granted(kubectl: Kubectl, namespace: str, account: str, *, verbs: str, resources: str) -> str:
    """A token of a new ServiceAccount `account` bound to a Role `account` of `verbs` on
    `resources`, once the apiserver's authorizer has the binding: it learns of RBAC objects
    through a watch, and a request made at once may still be refused."""
    token = _token_of(kubectl, namespace, account)
    kubectl.run("create", "role", account, "-n", namespace, f"--verb={verbs}",
                f"--resource={resources}")  # fmt: skip
    kubectl.run("create", "rolebinding", account, "-n", namespace, f"--role={account}",
                f"--serviceaccount={namespace}:{account}")  # fmt: skip
    verb, resource = verbs.split(",")[0], resources.split(",")[0]
    wait_for(
        lambda: kubectl.run("auth", "can-i", verb, resource, "-n", namespace,
                            f"--as=system:serviceaccount:{namespace}:{account}",
                            check=False).stdout.strip() == "yes",
        timeout_s=30, what=f"{account}'s Role to take effect",
    )  # fmt: skip
    return token


def _watch(url: str, received: queue.Queue[tuple[str, dict[str, Any]]]) -> None:
    with urllib.request.urlopen(url, timeout=60) as stream:
        event = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                received.put((event, json.loads(line[6:])))


def _watching(url: str) -> queue.Queue[tuple[str, dict[str, Any]]]:
    """The SSE watch at `url`, read in a thread: its (event, data) pairs as they come."""
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    threading.Thread(target=_watch, args=(url, received), daemon=True).start()
    return received


def test_the_watch_streams_each_resource_and_its_changes(
    console: str, kubectl: Kubectl, namespace: str
) -> None:
    watch = f"{console}/api/v1/watch?namespace={namespace}"
    # Watched from before the endpoint exists, its first change is its creation, which has no
    # status yet: the session's operator, where it runs, writes one at any moment after that.
    received = _watching(watch)
    assert received.get(timeout=20) == ("synced", {"keys": []})
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    event, summary = received.get(timeout=20)
    assert event == "upsert"
    assert (summary["kind"], summary["namespace"], summary["name"]) == (
        "RealtimeEndpoint",
        namespace,
        "chat",
    )
    assert summary["ready"] == "Unknown"
    # A watch started now lists it first, and the initial list ends by naming all of it: a page
    # reconnecting drops what is not there.
    relisted = _watching(watch)
    event, summary = relisted.get(timeout=20)
    assert (event, summary["kind"], summary["name"]) == ("upsert", "RealtimeEndpoint", "chat")
    assert relisted.get(timeout=20) == ("synced", {"keys": [f"realtimeendpoints/{namespace}/chat"]})

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
    # The session's operator, where it runs, writes its own status beside this one: each change
    # streams, so the patch's own shows up among them.
    deadline = time.monotonic() + 20
    while (found := received.get(timeout=max(0.1, deadline - time.monotonic())))[1].get(
        "reason"
    ) != "NoReadyReplicas":
        assert found[0] == "upsert", found
    event, summary = found
    assert (event, summary["ready"]) == ("upsert", "False")
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
    # The operator's own Events (the children it created) may be there too, where it runs.
    reported = [(e["reason"], e["count"]) for e in detail["events"] if e["type"] == "Warning"]
    assert reported == [("BackendFailing", 2)]

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
    # Without a token the console (started with --allow-anonymous-read) reads with its own
    # account: the chart's console ServiceAccount, which may read the three kinds everywhere.
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

    reader = _granted(kubectl, namespace, "reader", verbs="get,list,watch",
                      resources="realtimeendpoints.tiers.dev,streampipelines.tiers.dev,"
                      "batchjobs.tiers.dev,events")  # fmt: skip
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


def test_the_playground_passes_a_chat_through_the_endpoints_gateway(
    dev_cluster: devenv.DevCluster, crds: None, kubectl: Kubectl, namespace: str,
    services: Processes, redis_server: Any, tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    gateway = services.start("gateway", "tiers.runtime.gateway",
                             "--backend", f"openai-compatible={mock}/v1", "--redis", redis_server.url)  # fmt: skip
    kubectl.apply(json.dumps(ENDPOINT), namespace=namespace)
    in_cluster = f"http://chat-gateway.{namespace}.svc:8080/v1"
    kubectl.run("patch", "rte", "chat", "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"url": in_cluster, "requestsPerSecond": 0, "errors": 0}}))  # fmt: skip
    url, started = start_console(
        dev_cluster, kubectl, tmp_path, "--url-override", f"{in_cluster}={gateway}/v1"
    )
    try:
        chat = f"{url}/api/v1/realtime/{namespace}/chat/chat/completions"
        question = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
        first = _call(chat, body=json.dumps(question).encode())
        again = _call(chat, body=json.dumps(question).encode())
        assert first[0] == again[0] == 200
        assert first[2]["choices"][0]["message"]["content"]
        assert (first[1]["x-tiers-cache"], again[1]["x-tiers-cache"]) == ("miss", "hit")
        assert float(first[1]["x-tiers-cost-usd"]) > 0 == float(again[1]["x-tiers-cost-usd"])
        assert int(first[1]["x-tiers-latency-ms"]) >= 0

        streamed = _call(chat, body=json.dumps({**question, "stream": True,
                                                "messages": [{"role": "user", "content": "Stream."}]}).encode())  # fmt: skip
        assert streamed[0] == 200
        lines = streamed[2].splitlines()
        assert "data: [DONE]" in lines
        assert lines.index("event: tiers") > lines.index("data: [DONE]")
        timings = json.loads(lines[lines.index("event: tiers") + 1].removeprefix("data: "))
        assert timings["latencyMs"] >= timings["ttftMs"] >= 0
        assert float(timings["costUsd"]) > 0, "a streamed miss is priced from its usage chunk"
        assert timings["usage"]["completion_tokens"] > 0
        replayed = _call(chat, body=json.dumps({**question, "stream": True,
                                                "messages": [{"role": "user", "content": "Stream."}]}).encode())  # fmt: skip
        assert replayed[1]["x-tiers-cache"] == "hit"
        lines = replayed[2].splitlines()
        timings = json.loads(lines[lines.index("event: tiers") + 1].removeprefix("data: "))
        assert float(timings["costUsd"]) == 0, "a cache hit costs nothing"

        nobody = _token_of(kubectl, namespace, "nobody")
        status, _, refused = _call(chat, nobody, body=json.dumps(question).encode())
        assert status == 403 and refused["error"]["reason"] == "Forbidden"
        status, _, missing = _call(f"{url}/api/v1/realtime/{namespace}/other/chat/completions",
                                   body=b"{}")  # fmt: skip
        assert status == 404 and "no RealtimeEndpoint 'other'" in missing["error"]["message"]
    finally:
        processes.stop(started.pid)


def _multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "tiers-console-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def _refused_before_the_body(url: str, token: str, kind: str, length: int) -> tuple[int, Any]:
    """Sends only the headers of a POST of `length` bytes: the console answers from
    Content-Length alone and closes, and a client still writing the body would race that close
    (a broken pipe, or a reset that drops the answer)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.putrequest("POST", parts.path)
        for name, value in (("authorization", f"Bearer {token}"), ("content-type", kind),
                            ("content-length", str(length))):  # fmt: skip
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_batch_jobs_input_is_uploaded_estimated_started_and_its_results_downloaded(
    dev_cluster: devenv.DevCluster, crds: None, kubectl: Kubectl, namespace: str,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    root = tmp_path / "batch"
    job = upload_job(root)
    kubectl.apply(json.dumps(job), namespace=namespace)
    url, started = start_console(
        dev_cluster, kubectl, tmp_path, "--batch-root", str(root), "--max-upload-mb", "1"
    )
    writer = _granted(kubectl, namespace, "writer", verbs="get,update,patch",
                      resources="batchjobs.tiers.dev")  # fmt: skip
    try:
        base = f"{url}/api/v1/batch/{namespace}/scores"
        tickets = b"".join(
            json.dumps({"id": i, "body": f"ticket {i}"}).encode() + b"\n" for i in range(5)
        )
        body, kind = _multipart("tickets.jsonl", tickets)
        status, _, refused = _call(f"{base}/input", body=body, headers={"content-type": kind})
        assert status == 401, "without a token, only reads (--allow-anonymous-read)"
        status, _, stored = _call(
            f"{base}/input", writer, body=body, headers={"content-type": kind}
        )
        assert status == 200, stored
        assert stored == {
            "bytes": len(tickets),
            "records": 5,
            "uri": (root / "in" / "tickets.jsonl").as_uri(),
        }
        assert (root / "in" / "tickets.jsonl").read_bytes() == tickets

        body, kind = _multipart("big.jsonl", b"x" * (1024 * 1024 + 1))
        status, refused = _refused_before_the_body(f"{base}/input", writer, kind, len(body))
        assert status == 413 and "1,048,576 bytes" in refused["error"]["message"]
        body, kind = _multipart("bad.jsonl", b"not json\n")
        status, _, refused = _call(
            f"{base}/input", writer, body=body, headers={"content-type": kind}
        )
        assert status == 422 and "line 1 is not a JSON object" in refused["error"]["message"]
        assert (root / "in" / "tickets.jsonl").read_bytes() == tickets

        status, estimate = _get(f"{base}/estimate")
        assert (status, estimate["records"], estimate["budgetUsd"]) == (200, 5, "2")

        # A reader may look but not upload or start.
        reader = _granted(kubectl, namespace, "reader", verbs="get,list,watch",
                          resources="batchjobs.tiers.dev")  # fmt: skip
        assert _get(f"{base}/estimate", reader)[0] == 200
        status, _, refused = _call(f"{base}/start", reader, body=b"")
        assert status == 403 and "may not update BatchJob 'scores'" in refused["error"]["message"]

        status, _, answer = _call(f"{base}/start", writer, body=b"")
        assert (status, answer) == (200, {"started": True})
        assert kubectl.get("bjob", "scores", "-n", namespace)["spec"]["suspend"] is False
        status, _, again = _call(f"{base}/start", writer, body=b"")
        assert status == 409 and again["error"]["reason"] == "AlreadyStarted"

        # What a run leaves under its output (tiers.runtime.batch.layout), downloaded whole.
        for part, line in (("part-0", b'{"id": 0}\n'), ("part-1", b'{"id": 1}\n')):
            folder = root / "out" / "attempt=1" / "outcome=ok"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / part).write_bytes(line)
        status, headers, output = _call(f"{base}/results?file=output")
        assert status == 200 and output == '{"id": 0}\n{"id": 1}\n'
        assert headers["content-disposition"] == 'attachment; filename="scores-output.jsonl"'
        status, _, _ = _call(f"{base}/results?file=errors")
        assert status == 404

        # A Delta table's output: its current version's rows as JSON lines (a file that a later
        # version removed is not read), written here as the Delta protocol lays it out.
        table = root / "table"
        delta_job = {**job, "metadata": {"name": "table"},
                     "spec": {**job["spec"], "output": {"uri": table.as_uri(), "format": "delta"}}}  # fmt: skip
        kubectl.apply(json.dumps(delta_job), namespace=namespace)
        assert _call(f"{url}/api/v1/batch/{namespace}/table/results")[0] == 404, "no table yet"
        _write_delta_table(table, {"v0.parquet": ["0", "1"], "v1.parquet": ["0", "1", "2"]})
        status, headers, output = _call(f"{url}/api/v1/batch/{namespace}/table/results")
        assert status == 200 and headers["content-type"] == "application/x-ndjson"
        assert [json.loads(line) for line in output.splitlines()] == [
            {"id": i, "outcome": "ok"} for i in "012"]  # fmt: skip
    finally:
        processes.stop(started.pid)


def _write_delta_table(table: pathlib.Path, versions: dict[str, list[str]]) -> None:
    """A Delta table partitioned by outcome whose each version replaces the last one's file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = {"type": "struct", "fields": [
        {"name": name, "type": "string", "nullable": True, "metadata": {}}
        for name in ("id", "outcome")]}  # fmt: skip
    (table / "_delta_log").mkdir(parents=True)
    before = None
    for version, (name, ids) in enumerate(versions.items()):
        (table / "outcome=ok").mkdir(exist_ok=True)
        pq.write_table(pa.table({"id": ids}), table / "outcome=ok" / name)
        actions: list[dict[str, Any]] = [] if version else [
            {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
            {"metaData": {"id": "t", "format": {"provider": "parquet", "options": {}},
                          "schemaString": json.dumps(schema), "partitionColumns": ["outcome"],
                          "configuration": {}}},
        ]  # fmt: skip
        if before is not None:
            actions.append({"remove": {"path": f"outcome=ok/{before}", "dataChange": True}})
        actions.append({"add": {"path": f"outcome=ok/{name}", "partitionValues": {"outcome": "ok"},
                                "size": 1, "modificationTime": 0, "dataChange": True}})  # fmt: skip
        text = "".join(json.dumps(action) + "\n" for action in actions)
        (table / "_delta_log" / f"{version:020d}.json").write_text(text)
        before = name


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_]
    return found[0] if found else {}


def test_run_again_creates_the_job_anew_at_once_while_its_old_runs_job_is_slow_to_go(
    dev_cluster: devenv.DevCluster, crds: None, kubectl: Kubectl, operator: str, namespace: str,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    """The old run's Job is held by a finalizer (as pods that take long to stop hold it): "Run
    again" still answers at once, the job created anew says what its run waits for, and the run
    starts once the old Job is gone. A caller who may delete but not create the job is refused
    and the job kept."""
    root = tmp_path / "batch"
    job = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "again"},
        "spec": {
            "engine": "spark",
            "input": {"uri": (root / "in" / "tickets.jsonl").as_uri(), "format": "jsonl"},
            "output": {"uri": (root / "out").as_uri()},
            "model": {"backend": {"name": "mock", "provider": "openai-compatible",
                                  "baseURL": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini"},
                      "prompt": "Classify: {body}"},
        },
    }  # fmt: skip
    kubectl.apply(json.dumps(job), namespace=namespace)

    def bjob() -> dict[str, Any]:
        return kubectl.get("bjob", "again", "-n", namespace)  # type: ignore[no-any-return]

    first = wait_for(  # kwok completes the run's pod
        lambda: (found := bjob()).get("status", {}).get("state") == "Succeeded" and found,
        timeout_s=60, what="the first run to succeed",
    )  # fmt: skip
    kubectl.run("patch", "job", "again-run", "-n", namespace, "--type=merge",
                "-p", '{"metadata": {"finalizers": ["tiers.dev/test-holds-it"]}}')  # fmt: skip
    writer = _granted(kubectl, namespace, "writer", verbs="get,update,patch,delete,create",
                      resources="batchjobs.tiers.dev")  # fmt: skip
    deleter = _granted(kubectl, namespace, "deleter", verbs="get,update,patch,delete",
                       resources="batchjobs.tiers.dev")  # fmt: skip
    url, started = start_console(dev_cluster, kubectl, tmp_path, "--batch-root", str(root))
    try:
        # A caller who may delete the job but not create it is refused before anything goes.
        status, _, answer = _call(f"{url}/api/v1/batch/{namespace}/again/start", deleter, body=b"")
        assert status == 403 and answer["error"]["reason"] == "Forbidden"
        assert "cannot create resource" in answer["error"]["message"]
        assert bjob()["metadata"]["uid"] == first["metadata"]["uid"], "the job was kept"

        asked = time.monotonic()
        status, _, answer = _call(f"{url}/api/v1/batch/{namespace}/again/start", writer, body=b"")
        assert (status, answer) == (200, {"started": True, "rerun": True})
        assert time.monotonic() - asked < 15, "no wait for the old run's Job"

        # The old job's other children go at once; its run's Job is held.
        waiting = wait_for(
            lambda: (found := bjob())["metadata"]["uid"] != first["metadata"]["uid"]
            and _condition(found, "Succeeded").get("reason") == "PreviousRunDeleting"
            and "Job again-run" in _condition(found, "Succeeded")["message"] and found,
            timeout_s=30, what="the job created anew to say that its run waits",
        )  # fmt: skip
        assert _condition(waiting, "Succeeded")["status"] == "Unknown"
        assert "is still being deleted; this run starts once it is gone" in _condition(
            waiting, "Succeeded")["message"]  # fmt: skip
        assert waiting["status"]["state"] == "Pending"
        old = kubectl.get("job", "again-run", "-n", namespace)
        assert old["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
        assert old["metadata"].get("deletionTimestamp"), "the garbage collector is deleting it"

        kubectl.run("patch", "job", "again-run", "-n", namespace, "--type=json",
                    "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')  # fmt: skip
        new_uid = waiting["metadata"]["uid"]
        wait_for(
            lambda: (found := kubectl.run("get", "job", "again-run", "-n", namespace, "-o", "json",
                                          "--ignore-not-found").stdout.strip())
            and json.loads(found)["metadata"]["ownerReferences"][0]["uid"] == new_uid,
            timeout_s=30, what="the new run's Job",
        )  # fmt: skip
        submitted = wait_for(
            lambda: _condition(found := bjob(), "Submitted").get("reason") == "JobCreated"
            and found, timeout_s=30, what="the new run to be submitted",
        )  # fmt: skip
        assert submitted["metadata"]["uid"] == new_uid
    finally:
        processes.stop(started.pid)


def test_the_built_frontend_is_served_with_caching_by_content_hash(
    dev_cluster: devenv.DevCluster, crds: None, kubectl: Kubectl, tmp_path: pathlib.Path
) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>Tiers</title>" + " " * 2000)
    (dist / "assets" / "index-3f2a1b.js").write_text("console.log('tiers');" * 100)
    (tmp_path / "secret.txt").write_text("not to be served")
    url, started = start_console(dev_cluster, kubectl, tmp_path, "--frontend-dir", str(dist))
    try:
        status, headers, page = _call(url + "/")
        assert (status, headers["cache-control"]) == (200, "no-cache") and "<title>Tiers" in page
        # A client-side route gets the page; the API's unknown paths do not.
        status, headers, page = _call(url + "/resources/realtimeendpoints/demo/chat")
        assert (status, headers["cache-control"]) == (200, "no-cache") and "<title>Tiers" in page
        status, _, missing = _call(url + "/api/v1/nothing")
        assert status == 404 and missing["error"]["reason"] == "NotFound"
        status, headers, _ = _call(
            url + "/assets/index-3f2a1b.js", headers={"accept-encoding": "gzip"}
        )
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["content-encoding"] == "gzip"
        status, _, page = _call(url + "/..%2Fsecret.txt")
        assert "not to be served" not in page
    finally:
        processes.stop(started.pid)


def test_the_live_view_passes_the_push_gateway_through_and_reads_dead_letters(
    dev_cluster: devenv.DevCluster, crds: None, kubectl: Kubectl, namespace: str,
    services: Processes, tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    topics, pipeline = live_pipeline(dev_cluster.kafka_bootstrap, "console")
    push = services.start(
        "push", "tiers.runtime.stream", "push", "--bootstrap", dev_cluster.kafka_bootstrap,
        "--input", topics["in"], "--output", topics["out"],
    )  # fmt: skip
    kubectl.apply(json.dumps(pipeline), namespace=namespace)
    in_cluster = f"http://reviews-push.{namespace}.svc:8086"
    url, started = start_console(
        dev_cluster, kubectl, tmp_path, "--url-override", f"{in_cluster}={push}"
    )
    try:
        base = f"{url}/api/v1/stream/{namespace}/reviews"
        received = _watching(f"{base}/live")
        # The push gateway has subscribed once a record sent after a moment arrives.
        producer = Producer({"bootstrap.servers": dev_cluster.kafka_bootstrap})

        def result_arrives() -> bool:
            producer.produce(
                topics["out"],
                key=b"r1",
                value=json.dumps({"key": "r1", "output": "short"}).encode(),
            )
            producer.flush(5)
            try:
                return received.get(timeout=1)[1]["output"] == "short"
            except queue.Empty:
                return False

        wait_for(result_arrives, timeout_s=60, what="a result through the live view")

        status, _, sent = _call(f"{base}/events", body=json.dumps(
            {"events": [{"id": "e1", "text": "great"}], "poison": True}).encode())  # fmt: skip
        assert (status, sent) == (200, {"sent": 2})
        consumer = Consumer({"bootstrap.servers": dev_cluster.kafka_bootstrap, "group.id": topics["in"],
                             "auto.offset.reset": "earliest"})  # fmt: skip
        consumer.subscribe([topics["in"]])
        values = []
        deadline = time.monotonic() + 60  # a new consumer group joins slowly on a loaded broker
        while len(values) < 2 and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                values.append(json.loads(message.value()))
        consumer.close()
        assert len(values) == 2, values
        assert values[0] == {"id": "e1", "text": "great"}
        assert values[1]["id"].startswith("poison-") and "text" not in values[1]

        for i in range(3):
            producer.produce(
                topics["dlq"],
                value=json.dumps({"key": f"d{i}", "reason": "invalid_event"}).encode(),
            )
        assert producer.flush(30) == 0, "the dead letters were not all written"
        status, letters = _get(f"{base}/deadletters?limit=2")
        assert status == 200
        assert [item["value"]["key"] for item in letters["items"]] == ["d2", "d1"]
        status, _, refused = _call(f"{base}/events", body=b'{"events": []}')
        assert status == 422 and "at least one event" in refused["error"]["message"]
    finally:
        processes.stop(started.pid)
