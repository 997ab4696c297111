"""The operator under faults, on the control plane where the session's operator never runs
(conftest's `own_cluster`: it must not reconcile these objects, and this apiserver is restarted
here; Kafka is the session's): SIGKILLed 20 times at seeded random points while
RealtimeEndpoints, StreamPipelines (real Kafka topics) and Databricks BatchJobs are created,
changed and deleted, after which every object converges with no duplicate topic, run or child
and no orphan; and kube-apiserver with etcd killed and started again mid-reconcile, which one
operator process rides out."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from conftest import LOOPBACK_ALLOWED, Kubectl, http_ok, wait_for

from tiers import devenv
from tiers.devenv import databricks, processes, samples
from tiers.devenv.databricks.workspace import Run

SEED = 13
KILLS = 20
KILL_AFTER_S = (0.2, 3.0)
"""Bounds of the seeded random time an operator runs (once healthy) before it is SIGKILLed."""
TOKEN = "dapi-faults-token"
CHILD_KINDS = "configmaps,secrets,services,deployments,poddisruptionbudgets,persistentvolumeclaims"
TIERS_KINDS = "realtimeendpoints,streampipelines,batchjobs"


@pytest.fixture
def workspace() -> Iterator[databricks.Server]:
    """The Databricks test server; its runs stay PENDING (nothing runs on Spark)."""
    with databricks.running(tokens={TOKEN}, pending_s=3600) as server:
        yield server


class Operator:
    """`python -m tiers.operator` for one namespace of the fault cluster, started again and
    again; every start appends to the same log."""

    def __init__(self, cluster: devenv.DevCluster, namespace: str, log_dir: pathlib.Path) -> None:
        self.cluster, self.namespace, self.log_dir = cluster, namespace, log_dir
        self.started: processes.Started | None = None
        self.starts = 0

    @property
    def log(self) -> pathlib.Path:
        return self.log_dir / "operator.log"

    def start(self) -> processes.Started:
        health = processes.free_port()
        self.started = processes.start(
            "operator",
            [sys.executable, "-m", "tiers.operator", "--namespace", self.namespace,
             "--no-leader-election", "--health-port", str(health),
             "--metrics-port", str(processes.free_port())],
            log_dir=self.log_dir,
            env={**os.environ, **self.cluster.env(), "TIERS_RECHECK_SECONDS": "2",
                 "TIERS_DATABRICKS_RETRY_SECONDS": "2", **LOOPBACK_ALLOWED},
        )  # fmt: skip
        self.starts += 1
        processes.wait_until(
            lambda: http_ok(f"http://127.0.0.1:{health}/healthz"),
            what="waiting for the operator's liveness endpoint",
            timeout_s=60,
            watch=self.started,
        )
        return self.started

    def kill(self) -> None:
        assert self.started is not None
        processes.kill(self.started.pid)
        self.started = None

    def stop(self) -> None:
        if self.started is not None:
            processes.stop(self.started.pid, grace_s=5)
            self.started = None


@pytest.fixture
def operator_here(
    own_cluster: devenv.DevCluster, tmp_path: pathlib.Path, test_logs: list[pathlib.Path]
) -> Iterator[tuple[Operator, Kubectl]]:
    kubectl = Kubectl(own_cluster)
    namespace = f"faults-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", namespace)
    test_logs.append(own_cluster.log_dir / "kube-apiserver.log")
    running = Operator(own_cluster, namespace, tmp_path / "operator")
    test_logs.append(running.log)
    try:
        yield running, kubectl
    finally:
        running.stop()


# ---- the objects ---------------------------------------------------------------------------


def endpoint(name: str, **spec: Any) -> dict[str, Any]:
    return samples.realtime_endpoint(name, **{"replicas": 1, **spec})


def pipeline(name: str, bootstrap: str, suffix: str, **spec: Any) -> dict[str, Any]:
    topics = samples.topic_names(f"{name}-", f"-{suffix}")
    return samples.stream_pipeline(name, bootstrap=bootstrap, topics=topics, **spec)


def batch_job(name: str, workspace: databricks.Server) -> dict[str, Any]:
    return samples.batch_job(
        name, input_uri=f"dbfs:/faults/{name}/in.jsonl", output_uri=f"dbfs:/faults/{name}/out",
        engine="databricks",
        databricks={
            "host": workspace.url,
            "tokenSecretRef": {"name": "databricks", "key": "token"},
            "newCluster": {"numWorkers": 0},
            "secretScope": "tiers-faults",
        },
    )  # fmt: skip


KIND_OF = {"RealtimeEndpoint": "rte", "StreamPipeline": "spipe", "BatchJob": "bjob"}


class Objects:
    """What the test wants to exist: applied and deleted through kubectl, remembered here."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl, self.namespace = kubectl, namespace
        self.wanted: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}

    def apply(self, *objs: dict[str, Any]) -> None:
        for obj in objs:
            self.wanted[obj["metadata"]["name"]] = obj
        self.kubectl.apply(
            "\n---\n".join(json.dumps(obj) for obj in objs), namespace=self.namespace
        )

    def change(self, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
        obj = json.loads(json.dumps(self.wanted[name]))
        edit(obj["spec"])
        self.apply(obj)

    def delete(self, name: str) -> None:
        obj = self.wanted.pop(name)
        self.deleted[name] = obj
        self.kubectl.run("delete", KIND_OF[obj["kind"]], name, "-n", self.namespace, "--wait=false")

    def live(self) -> dict[str, dict[str, Any]]:
        found = self.kubectl.get(TIERS_KINDS, "-n", self.namespace)["items"]
        return {obj["metadata"]["name"]: obj for obj in found}


# ---- what converged means ------------------------------------------------------------------


def condition(obj: dict[str, Any], type_: str) -> str | None:
    for found in obj.get("status", {}).get("conditions") or []:
        if found["type"] == type_:
            return str(found["status"])
    return None


def unconverged(objects: Objects) -> list[str]:
    """What keeps the objects from their expected state: every wanted object observed at its
    generation and Ready (a BatchJob: its Databricks run recorded and pending); every deleted
    one gone."""
    live = objects.live()
    waiting = [f"{name} still exists" for name in objects.deleted if name in live]
    for name, wanted in objects.wanted.items():
        obj = live.get(name)
        if obj is None:
            waiting.append(f"{name} is missing")
            continue
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            waiting.append(f"{name} observed {status.get('observedGeneration')}")
        elif wanted["kind"] == "BatchJob":
            run = (status.get("lastRun") or {}).get("databricks") or {}
            if not run.get("runId") or condition(obj, "Succeeded") != "Unknown":
                waiting.append(f"{name} run {run} Succeeded={condition(obj, 'Succeeded')}")
        elif condition(obj, "Ready") != "True":
            waiting.append(f"{name} Ready={condition(obj, 'Ready')}")
        elif wanted["kind"] == "StreamPipeline":
            recorded = sorted(t["name"] for t in status.get("topics") or [])
            expected = sorted(t["name"] for t in wanted["spec"]["topics"].values())
            if recorded != expected:
                waiting.append(f"{name} records topics {recorded}")
    return waiting


def children_problems(objects: Objects) -> list[str]:
    """Children (what the operator labels as its own) whose controller is not a live object of
    the test (orphans), or that repeat a kind and component for one owner (duplicates)."""
    live_uids = {obj["metadata"]["uid"]: name for name, obj in objects.live().items()}
    found = objects.kubectl.get(
        CHILD_KINDS, "-n", objects.namespace, "-l", "app.kubernetes.io/managed-by=tiers-operator"
    )["items"]
    problems, seen = [], collections.Counter[tuple[str, str, str]]()
    for child in found:
        meta = child["metadata"]
        controllers = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
        owner = live_uids.get(controllers[0]["uid"]) if controllers else None
        if owner is None:
            problems.append(f"orphan {child['kind']}/{meta['name']}")
            continue
        seen[(owner, child["kind"], meta["labels"].get("app.kubernetes.io/component", ""))] += 1
    problems += [f"{count} x {key}" for key, count in seen.items() if count > 1]
    owners = {owner for owner, _, _ in seen}
    problems += [f"{name} has no children" for name, obj in objects.wanted.items()
                 if obj["kind"] != "BatchJob" and name not in owners]  # fmt: skip
    return problems


def kafka_topics(bootstrap: str, suffix: str) -> dict[str, int]:
    """The broker's topics of this test: name to partition count."""
    listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return {name: len(t.partitions) for name, t in listed.items() if name.endswith(suffix)}


def expected_topics(objects: Objects) -> dict[str, int]:
    """Topics of the wanted pipelines (at their partitions) and of deleted `Retain` ones."""
    pipelines = [obj for obj in objects.wanted.values() if obj["kind"] == "StreamPipeline"] + [
        obj for obj in objects.deleted.values()
        if obj["kind"] == "StreamPipeline" and obj["spec"].get("deletionPolicy") != "Delete"
    ]  # fmt: skip
    return {
        topic["name"]: topic["partitions"]
        for obj in pipelines
        for topic in obj["spec"]["topics"].values()
    }


def runs_of_jobs(workspace: databricks.Server, namespace: str) -> dict[str, list[Run]]:
    """The test server's runs by the BatchJob that submitted them (named in the run's name)."""
    with workspace.workspace.lock:
        runs = list(workspace.workspace.runs.values())
    by_job: dict[str, list[Run]] = collections.defaultdict(list)
    for run in runs:
        owner = run.run_name.split()[0]
        assert owner.startswith(f"{namespace}/"), f"a run of nobody's: {run.run_name}"
        by_job[owner.removeprefix(f"{namespace}/")].append(run)
    return by_job


def settle(check: Callable[[], list[str]], *, timeout_s: float, what: str) -> float:
    """Waits until `check` finds no problem; returns how long that took, or fails with the
    problems it found last."""
    began, problems = time.monotonic(), ["not checked"]

    def settled() -> bool:
        problems[:] = check()
        return not problems

    try:
        wait_for(settled, timeout_s=timeout_s, what=what, interval_s=1)
    except AssertionError:
        raise AssertionError(f"{what}: not after {timeout_s}s: {problems}") from None
    return time.monotonic() - began


# ---- the tests -----------------------------------------------------------------------------


def test_an_operator_killed_twenty_times_mid_reconcile_converges_with_no_duplicate_or_orphan(
    operator_here: tuple[Operator, Kubectl], dev_cluster: devenv.DevCluster,
    workspace: databricks.Server,
) -> None:  # fmt: skip
    running, kubectl = operator_here
    namespace, bootstrap = running.namespace, dev_cluster.kafka_bootstrap
    suffix = uuid.uuid4().hex[:8]
    kubectl.run("create", "secret", "generic", "databricks", "-n", namespace,
                f"--from-literal=token={TOKEN}")  # fmt: skip
    objects = Objects(kubectl, namespace)

    def replicas(count: int) -> Callable[[dict[str, Any]], None]:
        return lambda spec: spec.update(replicas=count)

    def grow_input(spec: dict[str, Any]) -> None:
        spec["topics"]["input"]["partitions"] = 3

    # One step before each kill: the operator is killed while it reconciles what the step did.
    steps: list[Callable[[], None]] = [
        lambda: objects.apply(
            endpoint("e-0"), endpoint("e-1"), endpoint("e-2"),
            pipeline("p-0", bootstrap, suffix, deletionPolicy="Delete"),
            pipeline("p-1", bootstrap, suffix),
            batch_job("b-0", workspace),
        ),
        lambda: None,
        lambda: objects.change("e-0", replicas(2)),
        lambda: objects.apply(
            endpoint("e-3"), pipeline("p-2", bootstrap, suffix, deletionPolicy="Delete"),
            batch_job("b-1", workspace),
        ),
        lambda: objects.change("p-0", grow_input),
        lambda: objects.delete("e-1"),
        lambda: objects.change("e-2", lambda spec: spec.update(cache={"ttlSeconds": 60})),
        lambda: objects.delete("p-2"),
        lambda: objects.delete("b-1"),
        lambda: objects.change("e-0", replicas(3)),
        lambda: objects.apply(endpoint("e-4"), batch_job("b-2", workspace)),
        lambda: objects.change("p-1", lambda spec: spec["model"].update(maxTokens=32)),
        lambda: objects.delete("e-3"),
        lambda: objects.apply(pipeline("p-3", bootstrap, suffix, deletionPolicy="Delete")),
        lambda: objects.delete("p-3"),
        lambda: objects.change("e-4", replicas(2)),
    ]  # fmt: skip
    rng = random.Random(SEED)
    began = time.monotonic()
    for kill in range(KILLS):
        running.start()
        if kill < len(steps):
            steps[kill]()
        time.sleep(rng.uniform(*KILL_AFTER_S))  # a random point of the reconcile: the fault
        running.kill()
    killed_s = time.monotonic() - began
    running.start()
    converged_s = settle(lambda: unconverged(objects), timeout_s=120, what="convergence")
    settle(lambda: children_problems(objects), timeout_s=60, what="no orphan or duplicate child")
    wait_for(
        lambda: kafka_topics(bootstrap, suffix) == expected_topics(objects),
        timeout_s=30, what=f"the topics {expected_topics(objects)}", interval_s=1,
    )  # fmt: skip
    runs = runs_of_jobs(workspace, namespace)
    assert all(len(found) == 1 for found in runs.values()), f"a second Databricks run: {runs}"
    jobs = {name for name, obj in objects.wanted.items() if obj["kind"] == "BatchJob"}
    assert jobs <= set(runs) <= jobs | {"b-1"}  # b-1 was deleted, maybe before it was run
    assert [name for name, [run] in runs.items() if run.cancelled] == [
        name for name in runs if name == "b-1"
    ], "the deleted BatchJob's run, and only it, is cancelled"
    print(
        f"\n{KILLS} kills over {killed_s:.0f}s survived; converged {converged_s:.1f}s after the"
        f" last start; runs {len(runs)}, topics {len(kafka_topics(bootstrap, suffix))}"
    )


def test_the_operator_rides_out_an_apiserver_and_etcd_restart_mid_reconcile(
    operator_here: tuple[Operator, Kubectl], own_cluster: devenv.DevCluster,
    dev_cluster: devenv.DevCluster,
) -> None:  # fmt: skip
    running, kubectl = operator_here
    bootstrap, suffix = dev_cluster.kafka_bootstrap, uuid.uuid4().hex[:8]
    objects = Objects(kubectl, running.namespace)
    started = running.start()
    objects.apply(endpoint("e-0"), pipeline("p-0", bootstrap, suffix, deletionPolicy="Delete"))
    settle(lambda: unconverged(objects), timeout_s=60, what="the first objects' convergence")
    # Changed and created just before the control plane goes: the operator is mid-reconcile.
    objects.change("e-0", lambda spec: spec.update(replicas=2))
    objects.apply(endpoint("e-1"), pipeline("p-1", bootstrap, suffix))
    went = time.monotonic()
    with devenv.control_plane_stopped(own_cluster.state_dir):
        time.sleep(5)  # the fault: the control plane stays down this long
    downtime_s = time.monotonic() - went
    # Changed and created while the operator's watches reconnect.
    objects.change("p-0", lambda spec: spec["topics"]["input"].update(partitions=2))
    objects.apply(endpoint("e-2"))
    converged_s = settle(lambda: unconverged(objects), timeout_s=120, what="convergence")
    assert processes.is_alive(started.pid) and running.starts == 1
    assert kafka_topics(bootstrap, suffix) == expected_topics(objects)
    assert not children_problems(objects)
    print(f"\ncontrol plane down {downtime_s:.1f}s; converged {converged_s:.1f}s after it was back")
