"""The local dev environment as one object: start it, describe it, stop it.

`up()` builds what is missing, then starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok with fake Nodes, Redis and Kafka, each on a free 127.0.0.1 port, and records
them in `<state_dir>/state.json`. `down()` stops what that file lists. Logs stay in
`<state_dir>/logs/`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator

from tiers.devenv import jars, paths, pki, processes, progress, redis_server, toolchain
from tiers.devenv import kafka as kafka_broker
from tiers.runtime import sparkjars

STATE_FILE = "state.json"
AUDIT_LOG = "audit.jsonl"
# Every request by a ServiceAccount, at Metadata level (who, verb, resource, answer; no bodies):
# the operator runs as one in the integration tests, which compare what it did with its RBAC.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""
# PersistentVolumes for claims to bind to (a stream job's checkpoint): there is no provisioner.
VOLUMES = 32


@dataclasses.dataclass(frozen=True)
class NodeSize:
    """What each fake Node offers the scheduler. No container runs on a kwok Node, so it can be
    as large as the workloads under test need: at the default, the three nodes take a thousand
    custom resources' pods (a gateway's 250m, a stream job's Spark cores, 3,000 pods and more)."""

    cpu: str = "1000"
    memory: str = "4Ti"
    pods: int = 4000


@dataclasses.dataclass(frozen=True)
class DevCluster:
    """A running local environment, as recorded in its state file."""

    state_dir: pathlib.Path
    kubeconfig: pathlib.Path
    server: str
    redis_url: str
    kafka_bootstrap: str
    bin_path: tuple[str, ...]
    processes: dict[str, int]

    @property
    def log_dir(self) -> pathlib.Path:
        return self.state_dir / "logs"

    @property
    def audit_log(self) -> pathlib.Path:
        """The apiserver's audit log: JSON lines, one per request by a ServiceAccount."""
        return self.state_dir / AUDIT_LOG

    @property
    def kubectl(self) -> pathlib.Path:
        return toolchain.KUBERNETES.path("kubectl")

    def env(self) -> dict[str, str]:
        """What a shell (or a test) needs to reach this environment, and where Spark's Kafka and
        Delta Lake connectors are (the stream and batch jobs find them there by themselves too)."""
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "REDIS_URL": self.redis_url,
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TIERS_DEV_PATH": ":".join(self.bin_path),
        }
        connector = [jar for jar_set in jars.SPARK_SETS for jar in jar_set.jars()]
        if connector:
            env[sparkjars.ENV] = ",".join(str(jar) for jar in connector)
        return env

    def token_kubeconfig(self, token: str, path: pathlib.Path) -> pathlib.Path:
        """Writes (owner-only) a kubeconfig that reaches this cluster with a bearer token, such
        as a ServiceAccount's: its requests hold exactly that account's RBAC."""
        path.write_text(
            pki.kubeconfig(
                server=self.server, ca_cert=self.state_dir / "pki" / "ca.crt", token=token
            )
        )
        path.chmod(0o600)
        return path

    def log_tails(self, lines: int = 20) -> str:
        """The end of every component's log, for a failing test's report."""
        return "\n".join(
            f"--- {log.name} ---\n{processes.tail(log, lines)}"
            for log in sorted(self.log_dir.glob("*.log"))
        )

    def is_running(self) -> bool:
        return all(processes.is_alive(pid) for pid in self.processes.values())

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["state_dir"] = str(self.state_dir)
        data["kubeconfig"] = str(self.kubeconfig)
        return json.dumps(data, indent=2)

    @classmethod
    def load(cls, state_dir: pathlib.Path) -> DevCluster | None:
        state = state_dir / STATE_FILE
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        return cls(
            state_dir=pathlib.Path(data["state_dir"]),
            kubeconfig=pathlib.Path(data["kubeconfig"]),
            server=data["server"],
            redis_url=data["redis_url"],
            kafka_bootstrap=data.get("kafka_bootstrap", ""),
            bin_path=tuple(data["bin_path"]),
            processes=dict(data["processes"]),
        )


def build(*, with_helm: bool = True, kafka: bool = True) -> None:
    """Builds every binary the environment needs that is not cached yet, and fetches the jars."""
    for tool in toolchain.ALL if with_helm else toolchain.CONTROL_PLANE:
        toolchain.ensure_built(tool)
    for jar_set in jars.ALL if kafka else ():
        jars.ensure_fetched(jar_set)


def up(
    state_dir: pathlib.Path | None = None,
    *,
    nodes: int = 3,
    node_size: NodeSize = NodeSize(),
    volumes: int = VOLUMES,
    redis: bool = True,
    kafka: bool = True,
    with_helm: bool = True,
) -> DevCluster:
    """Starts the environment, or returns the one already running from `state_dir`. `nodes` of
    `node_size` and `volumes` PersistentVolumes size it for what is to run (`bench/operator.py`
    asks for room for a thousand objects)."""
    state_dir = (state_dir or paths.default_state_dir()).resolve()
    existing = DevCluster.load(state_dir)
    if existing is not None:
        if existing.is_running():
            return existing
        down(state_dir)
    build(with_helm=with_helm, kafka=kafka)
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    logs = state_dir / "logs"
    started: dict[str, int] = {}
    try:
        cluster = _start(
            state_dir, logs, started, nodes=nodes, node_size=node_size, volumes=volumes,
            redis=redis, kafka=kafka, with_helm=with_helm,
        )  # fmt: skip
    except BaseException:
        for pid in reversed(started.values()):
            processes.stop(pid, grace_s=3)
        raise
    (state_dir / STATE_FILE).write_text(cluster.to_json())
    return cluster


def down(state_dir: pathlib.Path | None = None) -> bool:
    """Stops what `up()` started in `state_dir`; returns whether anything was recorded there."""
    state_dir = (state_dir or paths.default_state_dir()).resolve()
    cluster = DevCluster.load(state_dir)
    if cluster is None:
        return False
    for pid in reversed(list(cluster.processes.values())):
        processes.stop(pid)
    (state_dir / STATE_FILE).unlink()
    shutil.rmtree(state_dir / "etcd", ignore_errors=True)
    shutil.rmtree(state_dir / "kafka", ignore_errors=True)
    return True


@contextlib.contextmanager
def control_plane_stopped(state_dir: pathlib.Path | None = None) -> Iterator[None]:
    """kube-apiserver and etcd SIGKILLed for the duration of the block, as on a control-plane
    node that lost power; then started again (the apiserver on its port, etcd on its data, on
    ports of its own: the old ones may be taken meanwhile) and waited for until ready. The rest
    (controllers, kwok, Redis, Kafka, an operator) has to ride it out."""
    state_dir = (state_dir or paths.default_state_dir()).resolve()
    cluster = DevCluster.load(state_dir)
    if cluster is None:
        raise RuntimeError(f"no control plane is recorded in {state_dir}")
    for name in ("kube-apiserver", "etcd"):
        processes.kill(cluster.processes[name])
    try:
        yield
    finally:
        started = dict(cluster.processes)
        etcd_urls = _etcd_urls()
        started["etcd"] = _start_etcd(state_dir, cluster.log_dir, etcd_urls).pid
        creds = pki.existing(state_dir / "pki")
        started["kube-apiserver"] = _start_apiserver(
            state_dir, cluster.log_dir, creds, cluster.server, etcd_urls[0]
        ).pid
        restarted = dataclasses.replace(cluster, processes=started)
        (state_dir / STATE_FILE).write_text(restarted.to_json())


def _start(
    state_dir: pathlib.Path,
    logs: pathlib.Path,
    started: dict[str, int],
    *,
    nodes: int,
    node_size: NodeSize,
    volumes: int,
    redis: bool,
    kafka: bool,
    with_helm: bool,
) -> DevCluster:
    k8s = toolchain.KUBERNETES
    with progress.step("creating certificates"):
        creds = pki.create(state_dir / "pki")

    with progress.step("starting etcd"):
        etcd_urls = _etcd_urls()
        started["etcd"] = _start_etcd(state_dir, logs, etcd_urls).pid

    with progress.step("starting kube-apiserver"):
        server = f"https://127.0.0.1:{processes.free_port()}"
        apiserver = _start_apiserver(state_dir, logs, creds, server, etcd_urls[0])
        started["kube-apiserver"] = apiserver.pid
        kubeconfig = state_dir / "kubeconfig"
        kubeconfig.write_text(
            pki.kubeconfig(server=server, ca_cert=creds.ca_cert, token=creds.admin_token)
        )
        kubeconfig.chmod(0o600)

    with progress.step("starting kube-controller-manager, kube-scheduler and kwok"):
        common = [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                  f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false",
                  "--bind-address=127.0.0.1"]  # fmt: skip
        controllers = processes.start(
            "kube-controller-manager",
            [k8s.path("kube-controller-manager"), *common, f"--secure-port={processes.free_port()}",
             f"--service-account-private-key-file={creds.service_account_key}",
             f"--root-ca-file={creds.ca_cert}", "--use-service-account-credentials=false",
             "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle",
             "--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20",
             "--kube-api-qps=200", "--kube-api-burst=400"],
            log_dir=logs,
        )  # fmt: skip
        started["kube-controller-manager"] = controllers.pid
        scheduler = processes.start(
            "kube-scheduler",
            [k8s.path("kube-scheduler"), *common, f"--secure-port={processes.free_port()}",
             "--kube-api-qps=200", "--kube-api-burst=400"],
            log_dir=logs,
        )  # fmt: skip
        started["kube-scheduler"] = scheduler.pid
        stages = state_dir / "kwok-stages.yaml"
        stages.write_text(
            "\n---\n".join(
                (toolchain.KWOK.out_dir / asset).read_text() for asset in toolchain.KWOK.assets
            )
        )
        kwok = processes.start(
            "kwok",
            [toolchain.KWOK.path("kwok"), f"--kubeconfig={kubeconfig}", f"--config={stages}",
             "--manage-all-nodes=true", "--node-lease-duration-seconds=40",
             "--cidr=10.244.0.0/16", "--node-ip=10.244.0.1"],
            log_dir=logs,
        )  # fmt: skip
        started["kwok"] = kwok.pid

    kubectl = [str(k8s.path("kubectl")), f"--kubeconfig={kubeconfig}"]
    with progress.step(f"creating {nodes} kwok nodes and waiting until they are Ready"):
        subprocess.run(
            [*kubectl, "apply", "-f", "-"],
            input="\n---\n".join(
                [_fake_node(f"kwok-node-{i}", node_size) for i in range(nodes)]
                + [_volume(f"tiers-dev-pv-{i}", state_dir) for i in range(volumes)]
            ),
            text=True,
            check=True,
            capture_output=True,
        )
        processes.wait_until(
            lambda: _kubectl_ok(kubectl, "wait", "--for=condition=Ready", "node", "--all",
                                "--timeout=5s"),
            what="waiting for kwok nodes to be Ready",
            timeout_s=90,
            watch=kwok,
        )  # fmt: skip
        # Pods need the namespace's default ServiceAccount, made by the controller manager.
        processes.wait_until(
            lambda: _kubectl_ok(kubectl, "get", "serviceaccount", "default", "-n", "default"),
            what="waiting for the default ServiceAccount",
            timeout_s=60,
            watch=controllers,
        )

    redis_url = ""
    if redis:
        with progress.step("starting redis-server"):
            cache = redis_server.start(logs)
            started["redis"] = cache.process.pid
            redis_url = cache.url

    kafka_bootstrap = ""
    if kafka:
        with progress.step("starting Kafka"):
            broker = kafka_broker.start(logs, state_dir / "kafka")
            started["kafka"] = broker.process.pid
            kafka_bootstrap = broker.bootstrap

    bin_path = [str(k8s.out_dir)]
    if with_helm:
        bin_path.append(str(toolchain.HELM.out_dir))
    return DevCluster(
        state_dir=state_dir,
        kubeconfig=kubeconfig,
        server=server,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        bin_path=tuple(bin_path),
        processes=dict(started),
    )


def _etcd_urls() -> tuple[str, str]:
    """Client and peer URLs for etcd on free ports (a single member: no peer ever calls)."""
    return (f"http://127.0.0.1:{processes.free_port()}",
            f"http://127.0.0.1:{processes.free_port()}")  # fmt: skip


def _start_etcd(
    state_dir: pathlib.Path, logs: pathlib.Path, urls: tuple[str, str]
) -> processes.Started:
    """etcd on `urls` (client, peer), its data in `<state_dir>/etcd`; returns once healthy."""
    client_url, peer_url = urls
    etcd = processes.start(
        "etcd",
        [toolchain.ETCD.path("etcd"), "--data-dir", state_dir / "etcd",
         "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"default={peer_url}", "--unsafe-no-fsync",
         "--log-level", "warn"],
        log_dir=logs,
    )  # fmt: skip
    processes.wait_until(
        lambda: b'"health":"true"' in _get(f"{client_url}/health"),
        what="waiting for etcd",
        timeout_s=30,
        watch=etcd,
    )
    return etcd


def _start_apiserver(
    state_dir: pathlib.Path, logs: pathlib.Path, creds: pki.Credentials, server: str, etcd_url: str
) -> processes.Started:
    """kube-apiserver serving on `server`; returns once /readyz answers ok."""
    audit_policy = state_dir / "audit-policy.yaml"
    audit_policy.write_text(AUDIT_POLICY)
    port = server.rsplit(":", 1)[1]
    apiserver = processes.start(
        "kube-apiserver",
        [toolchain.KUBERNETES.path("kube-apiserver"), f"--etcd-servers={etcd_url}",
         "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1", f"--secure-port={port}",
         f"--tls-cert-file={creds.serving_cert}", f"--tls-private-key-file={creds.serving_key}",
         f"--client-ca-file={creds.ca_cert}", f"--token-auth-file={creds.token_file}",
         "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/16",
         "--allow-privileged=true", f"--cert-dir={state_dir / 'pki'}",
         "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
         f"--service-account-key-file={creds.service_account_pub}",
         f"--service-account-signing-key-file={creds.service_account_key}",
         # The aggregation layer's CA, so controllers find it in their authentication config.
         f"--requestheader-client-ca-file={creds.ca_cert}",
         "--requestheader-allowed-names=front-proxy-client",
         "--requestheader-username-headers=X-Remote-User",
         "--requestheader-group-headers=X-Remote-Group",
         "--requestheader-extra-headers-prefix=X-Remote-Extra-",
         # The `kubernetes` Service cannot point at a loopback address; nothing here needs it.
         "--endpoint-reconciler-type=none",
         f"--audit-policy-file={audit_policy}", f"--audit-log-path={state_dir / AUDIT_LOG}",
         "--audit-log-maxsize=512", "--audit-log-maxbackup=0",
         "--profiling=false"],
        log_dir=logs,
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(creds.ca_cert))
    processes.wait_until(
        lambda: _get(f"{server}/readyz", context=context) == b"ok",
        what="waiting for kube-apiserver /readyz",
        timeout_s=90,
        watch=apiserver,
        interval_s=0.25,
    )
    return apiserver


def _get(url: str, *, context: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        body: bytes = response.read()
        return body


def _kubectl_ok(kubectl: list[str], *args: str) -> bool:
    return subprocess.run([*kubectl, *args], capture_output=True).returncode == 0


def _volume(name: str, state_dir: pathlib.Path) -> str:
    """A PersistentVolume that any claim without a storage class may bind, as on a cluster
    whose admin made volumes by hand; used once (Retain), kwok pods never write to it."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"tiers.dev/dev-volume": "true"}},
            "spec": {
                "capacity": {"storage": "100Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(state_dir / "volumes" / name)},
            },
        }
    )


def _fake_node(name: str, size: NodeSize) -> str:
    """A Node that kwok manages: ready, schedulable, with room for many pods."""
    room = {"cpu": size.cpu, "memory": size.memory, "pods": str(size.pods)}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {"allocatable": room, "capacity": room},
        }
    )
