"""The operator at a thousand objects (`make bench-operator`): 700 RealtimeEndpoints, 200
StreamPipelines and 100 BatchJobs created at once on the local control plane (kwok nodes sized
for their pods, the dev Kafka for the pipelines' topics), beside a kopf operator that only
stamps a condition on each (`stamp_operator.py`: kopf's own overhead), in the same run.

(Not `bench/operator.py`: run as a script, a file of that name in this folder would shadow the
standard library's `operator` module for every bench here.)

For each operator: seconds from the last object applied to all of them settled (observedGeneration
current, Ready=True, or for the BatchJobs, created suspended, Succeeded=Unknown/Suspended); its
peak RSS and CPU; its own apiserver requests (from the audit log: it runs as a ServiceAccount of
its own) and every client's (`apiserver_request_total`) per object; how long a spec change on one
object takes to show as its observedGeneration while the others sit idle; and its requests per
second once everything has settled.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from tiers import devenv
from tiers.devenv import cluster as dev_cluster
from tiers.devenv import processes, samples

import machine
import options
import table

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLURALS = ("realtimeendpoints", "streampipelines", "batchjobs")


@dataclasses.dataclass(frozen=True)
class Load:
    endpoints: int
    pipelines: int
    batch_jobs: int

    @property
    def total(self) -> int:
        return self.endpoints + self.pipelines + self.batch_jobs


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]
    env: dict[str, str]


@dataclasses.dataclass
class Result:
    name: str
    objects: int
    apply_s: float = 0.0
    ready_s: float | None = None
    peak_rss_mb: float = 0.0
    cpu_s_to_ready: float = 0.0
    own_requests_to_ready: int = 0
    all_requests_to_ready: int = 0
    change_ms: list[float] = dataclasses.field(default_factory=list)
    idle_requests_per_s: float = 0.0
    idle_cpu_percent: float = 0.0
    unsettled: list[str] = dataclasses.field(default_factory=list)


def pipeline(name: str, bootstrap: str) -> dict[str, Any]:
    # One partition a topic: 600 topics on the one local broker, which is not what is measured.
    return samples.stream_pipeline(
        name, bootstrap=bootstrap, topics=samples.topic_names(f"{name}-"),
        spark={"cores": 1, "memory": "1Gi"},
    )  # fmt: skip


def batch_job(name: str) -> dict[str, Any]:
    # Suspended: what is measured is the operator's work per object, not 100 Spark runs.
    return samples.batch_job(
        name, input_uri="file:///tmp/tiers-bench/in.jsonl",
        output_uri="file:///tmp/tiers-bench/out", engine="spark", suspend=True,
    )  # fmt: skip


def manifests(load: Load, *, bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    return (
        [samples.realtime_endpoint(f"{prefix}rte-{i}") for i in range(load.endpoints)]
        + [pipeline(f"{prefix}sp-{i}", bootstrap) for i in range(load.pipelines)]
        + [batch_job(f"{prefix}bj-{i}") for i in range(load.batch_jobs)]
    )


def settled(obj: dict[str, Any]) -> bool:
    """observedGeneration current and the kind's final condition, as the bench sets them up."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if obj["kind"] == "BatchJob":
        succeeded = conditions.get("Succeeded") or {}
        return bool(succeeded.get("reason") == "Suspended")
    return bool((conditions.get("Ready") or {}).get("status") == "True")


class Kube:
    """kubectl as the dev cluster's admin (the bench's own requests are not the operator's)."""

    def __init__(self, cluster: devenv.DevCluster) -> None:
        self.kubectl = [str(cluster.kubectl), f"--kubeconfig={cluster.kubeconfig}"]

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.kubectl, *args], input=stdin, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def items(self, namespace: str) -> list[dict[str, Any]]:
        listed = json.loads(self.run("get", ",".join(PLURALS), "-n", namespace, "-o", "json"))
        items: list[dict[str, Any]] = listed["items"]
        return items

    def metrics_total(self) -> int:
        """Every client's requests so far (`apiserver_request_total`, all verbs and codes)."""
        total = 0.0
        for line in self.run("get", "--raw", "/metrics").splitlines():
            if line.startswith("apiserver_request_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


def service_account_kubeconfig(
    cluster: devenv.DevCluster, kube: Kube, namespace: str, directory: pathlib.Path
) -> pathlib.Path:
    """A ServiceAccount of the contender's own, cluster-admin: the audit log tells its requests
    from everyone else's."""
    kube.run("create", "serviceaccount", "operator", "-n", namespace)
    kube.run(
        "create", "clusterrolebinding", f"{namespace}-operator", "--clusterrole=cluster-admin",
        f"--serviceaccount={namespace}:operator",
    )  # fmt: skip
    token = kube.run("create", "token", "operator", "-n", namespace, "--duration=4h").strip()
    return cluster.token_kubeconfig(token, directory / f"{namespace}.kubeconfig")


def audited(audit_log: pathlib.Path, user: str, since: float, until: float) -> int:
    """Requests by `user` received between the two times (epoch seconds), each counted once."""
    seen = set()
    with audit_log.open() as lines:
        for line in lines:
            if user not in line:
                continue
            entry = json.loads(line)
            if entry.get("user", {}).get("username") != user:
                continue
            received = datetime.datetime.fromisoformat(
                entry["requestReceivedTimestamp"].replace("Z", "+00:00")
            ).timestamp()
            if since <= received < until:
                seen.add(entry["auditID"])
    return len(seen)


class Sampler:
    """The peak resident memory of a process, sampled every 0.2 s (kopf forks no children)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                status = pathlib.Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))


def cpu_seconds(pid: int) -> float:
    return sum(cpu for _, _, cpu in machine.process_tree(pid))


def measure(
    contender: Contender,
    *,
    cluster: devenv.DevCluster,
    kube: Kube,
    load: Load,
    workdir: pathlib.Path,
    idle_s: float,
    changes: int,
    timeout_s: float,
    clock: machine.Clock,
) -> Result:
    namespace = f"bench-{contender.name}"
    kube.run("create", "namespace", namespace)
    kubeconfig = service_account_kubeconfig(cluster, kube, namespace, workdir)
    user = f"system:serviceaccount:{namespace}:operator"
    result = Result(contender.name, load.total)
    env = {**os.environ, **cluster.env(), **contender.env, "KUBECONFIG": str(kubeconfig)}
    command = [arg.replace("{namespace}", namespace) for arg in contender.command]
    started = processes.start(f"operator-{contender.name}", command, log_dir=workdir, env=env)
    sampler = Sampler(started.pid)
    try:
        time.sleep(3)  # its watches open on an empty namespace
        if not processes.is_alive(started.pid):
            raise RuntimeError(f"{contender.name} exited: {processes.tail(started.log, 20)}")
        docs = manifests(load, bootstrap=cluster.kafka_bootstrap, prefix="")
        clock.say(f"{contender.name}: creating {load.total} objects")
        began, metrics_before, cpu_before = (
            time.time(),
            kube.metrics_total(),
            cpu_seconds(started.pid),
        )
        kube.run("create", "-n", namespace, "-f", "-", stdin="\n---\n".join(map(json.dumps, docs)))
        applied = time.time()
        result.apply_s = applied - began
        while True:
            items = kube.items(namespace)
            waiting = [f"{i['kind']}/{i['metadata']['name']}" for i in items if not settled(i)]
            if not waiting and len(items) == load.total:
                result.ready_s = time.time() - applied
                break
            if time.time() - applied > timeout_s:
                result.unsettled = waiting
                break
            clock.say(f"{contender.name}: {len(items) - len(waiting)}/{load.total} settled")
            time.sleep(2)
        ready_at = time.time()
        result.cpu_s_to_ready = cpu_seconds(started.pid) - cpu_before
        result.all_requests_to_ready = kube.metrics_total() - metrics_before
        clock.say(f"{contender.name}: settled after {result.ready_s} s; sitting idle {idle_s} s")
        time.sleep(10)
        idle_from, idle_cpu = time.time(), cpu_seconds(started.pid)
        time.sleep(idle_s)
        idle_until = time.time()
        result.idle_cpu_percent = 100 * (cpu_seconds(started.pid) - idle_cpu) / idle_s
        for _ in range(changes):
            result.change_ms.append(spec_change(kube, namespace, "rte-0") * 1000)
        time.sleep(2)  # the audit log is written in batches
        result.own_requests_to_ready = audited(cluster.audit_log, user, began, ready_at)
        result.idle_requests_per_s = (
            audited(cluster.audit_log, user, idle_from, idle_until) / idle_s
        )
    finally:
        sampler.stop.set()
        result.peak_rss_mb = sampler.peak_kb / 1024
        processes.stop(started.pid)
    return result


CHILD_KINDS = (
    "configmaps,secrets,services,deployments,poddisruptionbudgets,persistentvolumeclaims,"
    "networkpolicies,horizontalpodautoscalers,serviceaccounts,roles,rolebindings"
)
KEPT_METADATA = ("name", "labels", "annotations")


def bare(child: dict[str, Any]) -> dict[str, Any]:
    """A child as one would write it by hand: no owner, status or server-set fields."""
    fields = ("apiVersion", "kind", "spec", "data", "type", "rules", "roleRef", "subjects")
    kept = {key: child[key] for key in fields if key in child}
    kept["metadata"] = {k: v for k, v in child["metadata"].items() if k in KEPT_METADATA}
    spec = kept.get("spec") or {}
    if child["kind"] == "Service":
        for server_set in ("clusterIP", "clusterIPs"):
            spec.pop(server_set, None)
    if child["kind"] == "PersistentVolumeClaim":
        spec.pop("volumeName", None)
        kept["metadata"].pop("annotations", None)
    return kept


def available(deployment: dict[str, Any]) -> bool:
    want = deployment["spec"].get("replicas", 1)
    return bool((deployment.get("status") or {}).get("availableReplicas", 0) >= want)


def measure_children_only(
    kube: Kube, *, source: str, timeout_s: float, clock: machine.Clock
) -> Result:
    """Kubernetes' own ceiling: the very children the operator made (copied from `source`,
    with no owner) created by kubectl in a fresh namespace, eight at once, timed from the
    first create until every Deployment's pods are available. No operator can be faster."""
    namespace = "bench-children"
    kube.run("create", "namespace", namespace)
    listed = json.loads(kube.run("get", CHILD_KINDS, "-n", source, "-o", "json",
                                 "-l", "app.kubernetes.io/managed-by=tiers-operator"))  # fmt: skip
    children = [bare(child) for child in listed["items"]]
    deployments = sum(1 for child in children if child["kind"] == "Deployment")
    result = Result("children only (kubectl)", len(children))
    clock.say(f"children only: creating {len(children)} children ({deployments} Deployments)")
    # Config before the pods that mount it, as the operator applies them.
    first = [c for c in children if c["kind"] != "Deployment"]
    then = [c for c in children if c["kind"] == "Deployment"]
    began, metrics_before = time.time(), kube.metrics_total()
    for group in (first, then):
        chunks = [group[i::8] for i in range(8)]
        creates = [
            threading.Thread(target=kube.run, args=("create", "-n", namespace, "-f", "-"),
                             kwargs={"stdin": "\n---\n".join(map(json.dumps, chunk))})
            for chunk in chunks if chunk
        ]  # fmt: skip
        for create in creates:
            create.start()
        for create in creates:
            create.join()
    result.apply_s = time.time() - began
    while True:
        found = json.loads(kube.run("get", "deployments", "-n", namespace, "-o", "json"))["items"]
        waiting = [d["metadata"]["name"] for d in found if not available(d)]
        if not waiting and len(found) == deployments:
            result.ready_s = time.time() - began
            break
        if time.time() - began > timeout_s:
            result.unsettled = [f"Deployment/{name}" for name in waiting]
            break
        clock.say(f"children only: {len(found) - len(waiting)}/{deployments} available")
        time.sleep(2)
    result.all_requests_to_ready = kube.metrics_total() - metrics_before
    return result


def spec_change(kube: Kube, namespace: str, name: str) -> float:
    """Seconds from a spec change (the gateway's replicas, 2 and 3 in turn) to the object's
    status.observedGeneration saying it was seen."""
    current = json.loads(kube.run("get", "rte", name, "-n", namespace, "-o", "json"))
    replicas = 3 if current["spec"].get("replicas", 2) == 2 else 2
    patch = json.dumps({"spec": {"replicas": replicas}})
    began = time.monotonic()
    patched = json.loads(
        kube.run("patch", "rte", name, "-n", namespace, "--type=merge", "-p", patch, "-o", "json")
    )
    generation = patched["metadata"]["generation"]
    while time.monotonic() - began < 60:
        jsonpath = "-o=jsonpath={.status.observedGeneration}"
        if kube.run("get", "rte", name, "-n", namespace, jsonpath).strip() == str(generation):
            return time.monotonic() - began
        time.sleep(0.05)
    return float("inf")


def contenders(args: argparse.Namespace, cluster: devenv.DevCluster) -> Iterator[Contender]:
    python = sys.executable
    if not args.skip_baseline:
        yield Contender(
            "baseline",
            [python, "-m", "kopf", "run", "--standalone", "--namespace={namespace}",
             str(ROOT / "bench" / "stamp_operator.py")],
            {},
        )  # fmt: skip
    operator_env = {"TIERS_STATS_REDIS_URL": cluster.redis_url}
    operator = [python, "-m", "tiers.operator", "--no-leader-election", "--namespace={namespace}",
                f"--health-port={processes.free_port()}",
                f"--metrics-port={processes.free_port()}"]  # fmt: skip
    for source in args.before:
        # An earlier checkout's operator (its operator/ and runtime/ on the path), e.g. main
        # before a change: `git worktree add /tmp/before <commit>`.
        path = f"{source / 'operator'}:{source / 'runtime'}"
        yield Contender(f"before-{source.name}", operator, {**operator_env, "PYTHONPATH": path})
    yield Contender("tiers", operator, operator_env)


def report(results: list[Result], facts: dict[str, str], load: Load, *, idle_s: float) -> str:
    baseline = next((r for r in results if r.name == "baseline"), None)
    ceiling = next((r for r in results if r.name.startswith("children only")), None)
    header = [
        "operator", "objects", "Ready s after last apply", "÷ baseline",
        "÷ children only", "peak RSS MB",
        "CPU s to Ready", "own requests/object", "all clients' requests/object",
        "spec change → observedGeneration, median ms (max)", "idle own requests/s",
        "idle CPU %",
    ]  # fmt: skip
    rows = []
    for r in results:
        ready = "not settled" if r.ready_s is None else f"{r.ready_s:.1f}"
        ratio = to_ceiling = "-"
        if baseline and baseline.ready_s and r.ready_s and r is not baseline:
            ratio = f"{r.ready_s / baseline.ready_s:.1f}x"
        if ceiling and ceiling.ready_s and r.ready_s and r is not ceiling:
            to_ceiling = f"{r.ready_s / ceiling.ready_s:.2f}x"
        if r is ceiling:
            rows.append([
                r.name, f"{r.objects} children", ready, "-", "-", "-", "-", "-",
                f"{r.all_requests_to_ready / max(1, r.objects):.1f} per child", "-", "-", "-",
            ])  # fmt: skip
            continue
        change = "-"
        if r.change_ms:
            change = f"{statistics.median(r.change_ms):.0f} ({max(r.change_ms):.0f})"
        rows.append([
            r.name, str(r.objects), ready, ratio, to_ceiling, f"{r.peak_rss_mb:.0f}",
            f"{r.cpu_s_to_ready:.1f}", f"{r.own_requests_to_ready / r.objects:.1f}",
            f"{r.all_requests_to_ready / r.objects:.1f}", change,
            f"{r.idle_requests_per_s:.2f}", f"{r.idle_cpu_percent:.1f}",
        ])  # fmt: skip
    unsettled = "\n".join(
        f"- {r.name}: {len(r.unsettled)} not settled, e.g. {', '.join(r.unsettled[:5])}"
        for r in results
        if r.unsettled
    )
    return f"""# Operator benchmark

{table.facts(facts)}

{table.markdown_table(header, rows)}
{unsettled}

{load.endpoints} RealtimeEndpoints, {load.pipelines} StreamPipelines (three one-partition topics
each on the dev Kafka, a Spark job Deployment with a checkpoint claim, a push gateway) and
{load.batch_jobs} BatchJobs (created suspended: their config, stats Redis and key, no Spark run)
are created with one `kubectl create` in a namespace of each operator's own; each operator runs as
a ServiceAccount of its own, watching that namespace only. 'Ready s' runs from the end of that
`kubectl create` until every object has its observedGeneration and its final condition (Ready=True;
BatchJobs Succeeded=Unknown, reason Suspended). 'own requests' are the operator's, from the
apiserver's audit log, from the create to Ready; 'all clients'' are `apiserver_request_total` over
the same time (the controllers, scheduler and kwok making and running the children's pods, and
this bench's polls). 'spec change' patches one RealtimeEndpoint's replicas and polls its
observedGeneration every 50 ms while the other objects sit idle. 'idle' is a {idle_s:.0f} s window
starting 10 s after all settled (the re-check interval is 60 s). The baseline is kopf with one
handler that stamps the final condition (`bench/stamp_operator.py`). 'children only' is
Kubernetes' own ceiling here: the children the operator made, copied without their owner and
created by eight `kubectl create` at once in a fresh namespace, timed from the first create until
every Deployment's pods are available (its 'Ready s' includes the creates). Targets (2 cores):
Ready ≤ 60 s after the last apply, RSS ≤ 250 MB, spec change ≤ 2 s, idle ≤ 1 request/s, at 1,000
objects. The machine is shared: figures move with its load (load averages above).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 objects (70/20/10)")
    parser.add_argument("--endpoints", type=int, default=None)
    parser.add_argument("--pipelines", type=int, default=None)
    parser.add_argument("--batch-jobs", type=int, default=None)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--changes", type=int, default=5, help="spec changes timed")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for Ready")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--skip-ceiling", action="store_true",
        help="skip creating the operator's children by kubectl alone (Kubernetes' own ceiling)",
    )  # fmt: skip
    parser.add_argument(
        "--before", type=pathlib.Path, action="append", default=[],
        help="also measure the operator of this checkout (a git worktree of an earlier commit)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench/results/operator.md")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    load = Load(
        endpoints=args.endpoints if args.endpoints is not None else int(700 * scale),
        pipelines=args.pipelines if args.pipelines is not None else int(200 * scale),
        batch_jobs=args.batch_jobs if args.batch_jobs is not None else int(100 * scale),
    )
    clock = machine.Clock()
    facts = machine.common_facts()
    runs = 2 + len(args.before) + (0 if args.skip_baseline else 1)  # the ceiling's claims too
    with machine.sigterm_unwinds(), options.workdir(args.workdir, prefix="bench-operator-") as work:
        state_dir = work / "dev"
        clock.say("starting the local control plane and Kafka")
        cluster = devenv.up(
            state_dir,
            nodes=3,
            volumes=runs * load.pipelines + 8,
            redis=True,
            kafka=load.pipelines > 0,
            with_helm=False,
        )
        try:
            kube = Kube(cluster)
            kube.run("apply", "-f", str(ROOT / "crds"))
            kube.run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            results = []
            for contender in contenders(args, cluster):
                results.append(
                    measure(
                        contender, cluster=cluster, kube=kube, load=load, workdir=work,
                        idle_s=args.idle_seconds, changes=args.changes, timeout_s=args.timeout,
                        clock=clock,
                    )
                )  # fmt: skip
            if not args.skip_ceiling:
                results.append(
                    measure_children_only(
                        kube, source="bench-tiers", timeout_s=args.timeout, clock=clock
                    )
                )
        finally:
            devenv.down(state_dir)
    facts["fake nodes"] = f"3 of {dev_cluster.NodeSize()}"
    facts["load average after the run"] = machine.load_average()
    facts["bench wall time"] = f"{time.monotonic() - clock.started:.0f} s"
    table.publish(report(results, facts, load, idle_s=args.idle_seconds), args.out)


if __name__ == "__main__":
    main()
