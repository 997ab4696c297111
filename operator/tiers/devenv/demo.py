"""`make demo`: the whole system on one machine, from nothing, with progress; Ctrl-C stops it.

Starts the dev environment, installs the CRDs, runs the operator, applies `examples/` into the
`tiers-demo` namespace, runs the data plane that the kwok pods stand for as local processes
(the realtime gateway in front of mockllm, the Spark stream job and its push gateway, and a
batch job over a local file, all from the ConfigMaps the operator rendered), starts the console
(`console_demo`), sends a little traffic and a few events, and prints the resources with their
status, latency and cost and the console's URL; until Ctrl-C, a trickle of traffic keeps the
console's charts moving.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import urllib.request
from typing import Any

import yaml

from tiers.devenv import (
    cluster,
    console_demo,
    databricks,
    dataplane,
    local_spark,
    paths,
    processes,
    progress,
    spark_operator,
)
from tiers.operator.manifests import batch_children, gateway, labels, stream_children

NAMESPACE = "tiers-demo"
BATCH_CLAIM = {
    "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "chat-batches"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}  # fmt: skip
BATCH_API = {
    "storage": {"claimName": "chat-batches"},
    "spark": {"mode": "spark-operator", "executors": 1, "executorCores": 2,
              "executorMemory": "2Gi"},
}  # fmt: skip
ENDPOINT = "chat"
PIPELINE = "review-summaries"
REVIEWS = tuple(
    f"Review {i}: the {thing} was {verdict}"
    for i, (thing, verdict) in enumerate(
        [("battery", "great"), ("screen", "too dim"), ("delivery", "fast"), ("price", "fair")] * 5
    )
)
BATCH_JOB = "ticket-scores"
BATCH_RECORDS = 2000
TICKET_MODEL = {
    "endpointRef": {"name": ENDPOINT},
    "prompt": "Classify this ticket as bug, billing or question: {body}",
    "route": "completions",
    "rowsPerRequest": 16,
    "maxTokens": 8,
}
"""How the demo's BatchJobs call the model (`ticket-scores`, and `uploads` from the console)."""
DATABRICKS_JOB = "ticket-scores-databricks"
DATABRICKS_TOKEN = "dapi-demo-not-a-real-token"
PROMPTS = ("What is Tiers?", "Summarize Kubernetes in one line.", "Say hello.", "Name a colour.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tiers-demo", description=__doc__)
    parser.add_argument("--once", action="store_true", help="print the resources, then stop")
    parser.add_argument("--state-dir", default=None, help="default ~/.local/state/tiers/dev")
    args = parser.parse_args(argv)
    state_dir = pathlib.Path(args.state_dir) if args.state_dir else paths.default_state_dir()

    print("Tiers demo: building and starting the local system", file=sys.stderr)
    env = cluster.up(state_dir, with_helm=False)
    kubectl = [str(env.kubectl), f"--kubeconfig={env.kubeconfig}"]
    started: list[processes.Started] = []
    threads: list[console_demo.Traffic | console_demo.UploadRunner] = []
    batch_root = env.log_dir.parent / "batch-demo"
    stack = contextlib.ExitStack()
    try:
        with progress.step("installing the CRDs"):
            _run([*kubectl, "apply", "-f", str(paths.repo_root() / "crds")])
            _run([*kubectl, "wait", "--for=condition=Established", "crd",
                  "-l", "app.kubernetes.io/part-of=tiers", "--timeout=60s"])  # fmt: skip
        with progress.step("starting the operator and the mock model server"):
            operator_env = {
                **os.environ,
                **env.env(),
                "TIERS_STATS_REDIS_URL": env.redis_url,
                "TIERS_RECHECK_SECONDS": "5",  # a snappy demo; production re-checks each minute
                "TIERS_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # webhooks to local receivers
            }
            started.append(_serve(env, "operator", "tiers.operator", "--metrics-port",
                                  str(processes.free_port()), port_flag="--health-port",
                                  extra_env=operator_env))  # fmt: skip
            mock_port = processes.free_port()
            started.append(
                _serve(env, "mockllm", "tiers.runtime.mockllm", "--latency-ms", "30",
                       "--jitter-ms", "20", port=mock_port)
            )  # fmt: skip
        with progress.step(f"applying examples/ to namespace {NAMESPACE}"):
            _apply_examples(
                kubectl, mock_url=f"http://127.0.0.1:{mock_port}/v1", kafka=env.kafka_bootstrap
            )
        with progress.step("starting the realtime gateway from its rendered ConfigMap"):
            _wait_ready(kubectl)
            url, gateway_process = dataplane.start_gateway(
                kubectl,
                namespace=NAMESPACE,
                endpoint=ENDPOINT,
                redis_url=env.redis_url,
                work_dir=env.log_dir,
                dev_cluster=env,
            )
            started.append(gateway_process)
            batches = local_spark.LocalSparkOperator(
                kubectl, NAMESPACE, work_dir=env.log_dir, env=env.env(),
                endpoint_urls={gateway.url(labels.Ref(ENDPOINT, NAMESPACE)): url + "/v1"},
            )  # fmt: skip
            batches.start()
            stack.callback(batches.stop)
        with progress.step("sending a little traffic and waiting for latency and cost in status"):
            _send_traffic(url)
            processes.wait_until(
                lambda: _has_traffic(kubectl), what="waiting for status", timeout_s=60
            )
        with progress.step("starting the stream job (Spark) and its push gateway"):
            _wait_for(kubectl, "spipe", PIPELINE, "TopicsReady")
            push_url, stream_processes = dataplane.start_stream(
                kubectl,
                namespace=NAMESPACE,
                pipeline=PIPELINE,
                endpoint_urls={gateway.url(labels.Ref(ENDPOINT, NAMESPACE)): url + "/v1"},
                redis_url=env.redis_url,
                work_dir=env.log_dir,
            )
            started.extend(stream_processes)
        local_endpoints = {gateway.url(labels.Ref(ENDPOINT, NAMESPACE)): url + "/v1"}
        with progress.step("starting the console"):
            console_url, console_process = console_demo.start(
                env, namespace=NAMESPACE, batch_root=batch_root,
                url_overrides={
                    **local_endpoints,
                    stream_children.PUSH.url(labels.Ref(PIPELINE, NAMESPACE)): push_url,
                },
            )  # fmt: skip
            started.append(console_process)
            uploads = console_demo.uploads_job(NAMESPACE, model=TICKET_MODEL, batch_root=batch_root)
            _run([*kubectl, "apply", "-f", "-"], stdin=json.dumps(uploads))
        with progress.step("feeding reviews to the pipeline and waiting for their summaries"):
            pushed = _feed_pipeline(push_url)
            processes.wait_until(
                lambda: _events_scored(kubectl) >= len(REVIEWS),
                what="waiting for the pipeline's status",
                timeout_s=60,
            )
        # The batch job draws its own progress line (records, rate, cost, ETA) under this one.
        print(f"  … scoring {BATCH_RECORDS:,} tickets with BatchJob {BATCH_JOB} (Spark)",
              file=sys.stderr, flush=True)  # fmt: skip
        summary = _run_batch_job(kubectl, env, local_endpoints)
        with progress.step(f"waiting for BatchJob {BATCH_JOB} to report its run"):
            processes.wait_until(
                lambda: _batch_state(kubectl) == "Succeeded", what="waiting for status",
                timeout_s=60,
            )  # fmt: skip
        with progress.step(
            f"running BatchJob {DATABRICKS_JOB} on Databricks (the test workspace, local Spark)"
        ):
            workspace = stack.enter_context(databricks.running(tokens={DATABRICKS_TOKEN}))
            databricks_run = _run_on_databricks(
                kubectl, workspace.url, mock_url=f"http://127.0.0.1:{mock_port}/v1",
                tickets=env.log_dir.parent / "batch-demo" / "tickets.jsonl",
            )  # fmt: skip
        print()
        print(_run([*kubectl, "get", "tiers", "-n", NAMESPACE]))
        print(_conditions_table(kubectl))
        print("\nSummaries pushed to the browser channel (SSE):")
        for record in pushed[:3]:
            print(f"  {record['key']}: {record['output']}")
        print(f"\nCall the gateway with the openai client:\n  {_openai_command(url)}")
        print(f"Submit a batch (OpenAI's Batch API) to it:\n{_openai_batch_snippet(url)}")
        print(
            "Send events: curl -H 'content-type: application/json'"
            f' -d \'{{"text": "great product"}}\' {push_url}/events'
        )
        print(f"Watch results: curl -N {push_url}/events/results")
        print(
            f"\nBatch run {summary['state']}: {summary['done']:,} records scored, "
            f"{summary['failed']:,} failed, ${summary['costUSD']}, "
            f"in {summary['durationSeconds']:.1f} s; results in {summary['outputURI']}"
        )
        print(
            f"Databricks run {databricks_run['runId']} {databricks_run['resultState']}: "
            f"{databricks_run['done']:,} records scored, ${databricks_run['costUSD']}; "
            f"run page {databricks_run['runPageURL']}"
        )
        print(f"\nConsole:  {console_url}/  (every resource live; chat, stream and batch pages)")
        print(f'Explore:  eval "$(tiers dev env)"; kubectl get tiers -n {NAMESPACE} -o yaml')
        print(f"Logs:     {env.log_dir}")
        if not args.once:
            # A trickle of traffic keeps the console's charts moving; a BatchJob the console
            # starts runs here (kwok's pods run nothing).
            threads.append(console_demo.Traffic(gateway=url, push=push_url, prompts=PROMPTS))
            threads.append(console_demo.UploadRunner(
                kubectl, env, namespace=NAMESPACE, batch_root=batch_root,
                endpoint_urls=local_endpoints,
            ))  # fmt: skip
            for thread in threads:
                thread.start()
            print("Running; press Ctrl-C to stop everything.", flush=True)
            _wait_for_interrupt()
    finally:
        for thread in threads:
            thread.stopped.set()
        with progress.step("stopping the data plane, the operator and the local system"):
            stack.close()
            for process in reversed(started):
                processes.stop(process.pid)
            cluster.down(state_dir)
    return 0


def _serve(
    env: cluster.DevCluster,
    name: str,
    module: str,
    *args: str,
    port: int | None = None,
    port_flag: str = "--port",
    extra_env: dict[str, str] | None = None,
) -> processes.Started:
    port = port or processes.free_port()
    started = processes.start(
        name,
        [sys.executable, "-m", module, port_flag, str(port), *args],
        log_dir=env.log_dir,
        env=extra_env,
    )
    processes.wait_until(
        lambda: _ok(f"http://127.0.0.1:{port}/healthz"),
        what=f"waiting for {name}",
        timeout_s=60,
        watch=started,
    )
    return started


def _apply_examples(kubectl: list[str], *, mock_url: str, kafka: str) -> None:
    namespace = _run([*kubectl, "create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml"])
    _run([*kubectl, "apply", "-f", "-"], stdin=namespace)
    secret = _run([*kubectl, "create", "secret", "generic", "azure-openai", "-n", NAMESPACE,
                   "--from-literal=api-key=demo-not-a-real-key",
                   "--dry-run=client", "-o", "yaml"])  # fmt: skip
    _run([*kubectl, "apply", "-f", "-"], stdin=secret)
    documents = [
        document
        for path in sorted((paths.repo_root() / "examples").glob("[0-9][0-9]-*/*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
    ]
    for document in documents:
        # The example batch jobs read object storage this machine cannot reach (and kwok would
        # complete their pods without running them): they are shown, suspended.
        if document["kind"] == "BatchJob":
            document["spec"]["suspend"] = True
    _run([*kubectl, "apply", "-n", NAMESPACE, "-f", "-"], stdin=yaml.safe_dump_all(documents))
    # Local mode: the example's primary backend is an in-cluster Service; here it is mockllm.
    patch = [{"op": "replace", "path": "/spec/backends/0/baseURL", "value": mock_url}]
    _run([*kubectl, "patch", "rte", ENDPOINT, "-n", NAMESPACE, "--type=json",
          "-p", json.dumps(patch)])  # fmt: skip
    # ... with OpenAI's Batch API on it: its claim bound to a dev volume, and each batch's run a
    # SparkApplication, which `local_spark` runs here (kwok would complete a Job's pod unrun).
    _run([*kubectl, "apply", "--server-side", "--field-manager=tiers-demo",
          "-f", str(spark_operator.sparkapplication_crd())])  # fmt: skip
    _run([*kubectl, "apply", "-n", NAMESPACE, "-f", "-"], stdin=json.dumps(BATCH_CLAIM))
    batch_api: list[dict[str, Any]] = [{"op": "add", "path": "/spec/batch", "value": BATCH_API}]
    _run([*kubectl, "patch", "rte", ENDPOINT, "-n", NAMESPACE, "--type=json",
          "-p", json.dumps(batch_api)])  # fmt: skip
    # ... and every pipeline's brokers are the dev Kafka.
    patch = [{"op": "replace", "path": "/spec/kafka/bootstrapServers", "value": kafka}]
    pipelines = _run([*kubectl, "get", "spipe", "-n", NAMESPACE, "-o", "name"]).split()
    for pipeline in pipelines:
        _run([*kubectl, "patch", pipeline, "-n", NAMESPACE, "--type=json",
              "-p", json.dumps(patch)])  # fmt: skip


def _run_batch_job(
    kubectl: list[str], env: cluster.DevCluster, endpoint_urls: dict[str, str]
) -> dict[str, Any]:
    """A one-off BatchJob over a local file of tickets, through the `chat` endpoint: applied
    suspended (kwok would complete its Job's pod at once), run here from its rendered config
    with its progress on the terminal, then let go so that the operator reports the run."""
    data = env.log_dir.parent / "batch-demo"  # the console's --batch-root
    data.mkdir(parents=True, exist_ok=True)
    tickets = data / "tickets.jsonl"
    with tickets.open("w") as out:
        for i in range(BATCH_RECORDS):
            topic = ("a double charge", "a login error", "a question on plans")[i % 3]
            out.write(json.dumps({"id": f"ticket-{i}", "body": f"Ticket {i} reports {topic}"}))
            out.write("\n")
    output = (data / "scores").as_uri()
    manifest = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": BATCH_JOB, "namespace": NAMESPACE},
        "spec": {
            "engine": "spark",
            "suspend": True,
            "input": {"uri": tickets.as_uri(), "format": "jsonl"},
            "output": {"uri": output, "format": "jsonl"},
            "model": TICKET_MODEL,
            "budget": {"maxUSD": "1"},
        },
    }
    _run([*kubectl, "apply", "-f", "-"], stdin=json.dumps(manifest))
    run = batch_children.one_off_run_name(labels.Ref(BATCH_JOB, NAMESPACE))

    def rendered() -> bool:
        found = subprocess.run(
            [*kubectl, "get", "configmap", batch_children.CONFIG.name(labels.Ref(BATCH_JOB,
             NAMESPACE)), "-n", NAMESPACE], capture_output=True,
        )  # fmt: skip
        return found.returncode == 0

    processes.wait_until(rendered, what="waiting for the batch job's config", timeout_s=60)
    finished = dataplane.run_batch(
        kubectl, namespace=NAMESPACE, job=BATCH_JOB, run=run, output_uri=output,
        endpoint_urls=endpoint_urls, work_dir=env.log_dir,
    )  # fmt: skip
    _run([*kubectl, "patch", "bjob", BATCH_JOB, "-n", NAMESPACE, "--type=merge",
          "-p", '{"spec": {"suspend": false}}'])  # fmt: skip
    summary: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return summary


def _run_on_databricks(
    kubectl: list[str], host: str, *, mock_url: str, tickets: pathlib.Path
) -> dict[str, Any]:
    """The same tickets scored by a Databricks-engine BatchJob: the operator submits its run to
    the test workspace, which runs the Spark Python task on local Spark; the model is mockllm,
    called directly, as a Databricks cluster would call a public API."""
    secret = _run([*kubectl, "create", "secret", "generic", "databricks-demo", "-n", NAMESPACE,
                   f"--from-literal=token={DATABRICKS_TOKEN}", "--dry-run=client",
                   "-o", "yaml"])  # fmt: skip
    _run([*kubectl, "apply", "-f", "-"], stdin=secret)
    manifest = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": DATABRICKS_JOB, "namespace": NAMESPACE},
        "spec": {
            "engine": "databricks",
            "input": {"uri": tickets.as_uri(), "format": "jsonl"},
            "output": {"uri": (tickets.parent / "databricks-scores").as_uri()},
            "model": {
                "backend": {
                    "name": "mock",
                    "provider": "openai-compatible",
                    "baseURL": mock_url,
                    "model": "gpt-4o-mini",
                },
                "prompt": "Classify this ticket as bug, billing or question: {body}",
                "route": "completions",
                "rowsPerRequest": 16,
                "maxTokens": 8,
            },
            "databricks": {
                "host": host,
                "tokenSecretRef": {"name": "databricks-demo", "key": "token"},
                "newCluster": {"numWorkers": 0},
            },
            "budget": {"maxUSD": "1"},
        },
    }
    _run([*kubectl, "apply", "-f", "-"], stdin=json.dumps(manifest))
    found: dict[str, Any] = {}

    def succeeded() -> bool:
        obj = json.loads(
            _run([*kubectl, "get", "bjob", DATABRICKS_JOB, "-n", NAMESPACE, "-o", "json"])
        )
        status = obj.get("status", {})
        if status.get("state") == "Failed":
            raise RuntimeError(f"the Databricks run failed: {status.get('conditions')}")
        found.update(status)
        return status.get("state") == "Succeeded" and bool(status.get("progress"))

    processes.wait_until(succeeded, what="waiting for the Databricks run", timeout_s=240)
    return {
        **found["lastRun"]["databricks"],
        "done": found["progress"]["done"],
        "costUSD": found["cost"]["totalUSD"],
    }


def _batch_state(kubectl: list[str]) -> str:
    found = json.loads(_run([*kubectl, "get", "bjob", BATCH_JOB, "-n", NAMESPACE, "-o", "json"]))
    progress_ = found.get("status", {}).get("progress")
    return str(found.get("status", {}).get("state")) if progress_ else ""


def _items(kubectl: list[str]) -> list[dict[str, object]]:
    listed = json.loads(_run([*kubectl, "get", "tiers", "-n", NAMESPACE, "-o", "json"]))
    items: list[dict[str, object]] = listed["items"]
    return items


def _wait_ready(kubectl: list[str]) -> None:
    def ready() -> bool:
        configmap = gateway.name(labels.Ref(ENDPOINT, NAMESPACE))
        found = subprocess.run(
            [*kubectl, "get", "configmap", configmap, "-n", NAMESPACE,
             "-o", "jsonpath={.data.gateway\\.json}"],
            capture_output=True, text=True,
        )  # fmt: skip
        return found.returncode == 0 and "127.0.0.1" in found.stdout

    processes.wait_until(ready, what="waiting for the rendered gateway config", timeout_s=60)


def _wait_for(kubectl: list[str], kind: str, name: str, condition: str) -> None:
    def true() -> bool:
        obj = json.loads(_run([*kubectl, "get", kind, name, "-n", NAMESPACE, "-o", "json"]))
        conditions = obj.get("status", {}).get("conditions", [])
        return any(c["type"] == condition and c["status"] == "True" for c in conditions)

    processes.wait_until(true, what=f"waiting for {kind}/{name} {condition}", timeout_s=60)


def _feed_pipeline(push_url: str) -> list[dict[str, Any]]:
    """Posts the reviews and collects their summaries from the push gateway's SSE channel."""
    received: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def listen() -> None:
        with urllib.request.urlopen(push_url + "/events/results", timeout=180) as stream:
            for line in stream:
                subscribed.set()
                if line.startswith(b"data: "):
                    received.append(json.loads(line[6:]))
                    if len(received) >= len(REVIEWS):
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    subscribed.wait(30)
    events = [{"id": f"review-{i}", "text": text} for i, text in enumerate(REVIEWS)]
    request = urllib.request.Request(
        push_url + "/events",
        data=json.dumps(events).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    listener.join(180)
    return received


def _events_scored(kubectl: list[str]) -> int:
    pipeline = json.loads(_run([*kubectl, "get", "spipe", PIPELINE, "-n", NAMESPACE, "-o", "json"]))
    return int(pipeline.get("status", {}).get("throughput", {}).get("events", 0))


def _send_traffic(url: str) -> None:
    for i in range(40):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPTS[i % 4]}]}
        request = urllib.request.Request(
            url + "/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def _has_traffic(kubectl: list[str]) -> bool:
    endpoint = json.loads(_run([*kubectl, "get", "rte", ENDPOINT, "-n", NAMESPACE, "-o", "json"]))
    return int(endpoint.get("status", {}).get("traffic", {}).get("requests", 0)) >= 40


def _openai_command(url: str) -> str:
    code = (
        f"import openai; c = openai.OpenAI(base_url='{url}/v1', api_key='demo'); "
        "print(c.chat.completions.create(model='gpt-4o-mini', "
        "messages=[{'role': 'user', 'content': 'Hello'}]).choices[0].message.content)"
    )
    return f'.venv/bin/python -c "{code}"'


def _openai_batch_snippet(url: str) -> str:
    """A script that uploads a batch file, submits it, waits and prints the output file."""
    return f"""\
.venv/bin/python - <<'EOF'
import json, time, openai
client = openai.OpenAI(base_url="{url}/v1", api_key="demo")
lines = [{{"custom_id": f"q{{i}}", "method": "POST", "url": "/v1/chat/completions",
          "body": {{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": q}}]}}}}
         for i, q in enumerate(["Hello", "What is Tiers?"])]
upload = client.files.create(
    file=("requests.jsonl", "".join(json.dumps(line) + "\\n" for line in lines).encode()),
    purpose="batch")
batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                              completion_window="24h")
while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed"):
    time.sleep(2)
print(batch.status, batch.request_counts)
print(client.files.content(batch.output_file_id).text)
EOF"""


def _conditions_table(kubectl: list[str]) -> str:
    rows = [("RESOURCE", "CONDITION", "STATUS", "REASON", "MESSAGE")]
    for item in _items(kubectl):
        name = f"{item['kind']}/{item['metadata']['name']}"  # type: ignore[index]
        for condition in item.get("status", {}).get("conditions", []):  # type: ignore[attr-defined]
            rows.append(
                (name, condition["type"], condition["status"], condition["reason"],
                 condition.get("message", ""))
            )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _run(command: list[str], *, stdin: str | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed:\n{result.stderr}")
    return result.stdout


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


if __name__ == "__main__":
    sys.exit(main())
