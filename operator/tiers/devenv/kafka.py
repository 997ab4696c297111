"""A throwaway Apache Kafka broker: KRaft, one node as broker and controller, on loopback ports.

`cluster.up()` starts one for `tiers dev up` and the integration tests' session; a test that must
stop or restart a broker starts its own. The jars come from `tiers.devenv.jars` (pinned in
`tools/kafka/pom.xml`); the JVM is the `java` on PATH (Java 17 or newer). Starting again on the
data folder of a stopped broker resumes it: same ports, same topics and offsets.
"""

from __future__ import annotations

import base64
import dataclasses
import pathlib
import re
import shutil
import socket
import subprocess
import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tiers.devenv import jars, processes

# Small heap: a dev broker holds little; G1 with short pauses, as Kafka's own start script does.
_BROKER_JVM = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-Djava.awt.headless=true")  # fmt: skip
# The storage formatter runs for a second: the quick JIT tier is enough.
_TOOL_JVM = ("-Xshare:auto", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

_LOG4J2 = """\
# Written by tiers.devenv.kafka: WARN and above, to stdout, which is the broker's log file.
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
"""


@dataclasses.dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str
    """`bootstrap.servers` for clients: `127.0.0.1:<port>`."""
    port: int
    controller_port: int
    data_dir: pathlib.Path
    process: processes.Started

    def stop(self) -> None:
        processes.stop(self.process.pid, grace_s=15)


def start(
    log_dir: pathlib.Path,
    data_dir: pathlib.Path,
    *,
    name: str = "kafka",
    timeout_s: float = 180.0,
) -> KafkaBroker:
    """Starts a broker with its config and data in `data_dir`; returns once it serves metadata.
    A broker that exits fails at once; one still starting gets `timeout_s`, which a busy 2-core
    machine needs (its JVM alone took over a minute at load 20)."""
    java = _java()
    jars.ensure_fetched(jars.KAFKA)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "server.properties"
    log4j = data_dir / "log4j2.properties"
    log4j.write_text(_LOG4J2)
    jvm_logging = f"-Dlog4j2.configurationFile={log4j}"
    if (data_dir / "log" / "meta.properties").exists() and config.exists():
        port, controller_port = _ports(config.read_text())
    else:
        port, controller_port = _two_free_ports()
        config.write_text(server_properties(port, controller_port, data_dir / "log"))
        _run(
            [java, *_TOOL_JVM, jvm_logging, "-cp", jars.KAFKA.classpath,
             "kafka.tools.StorageTool", "format", "--standalone", "-t", random_cluster_id(),
             "-c", str(config)],
            what="formatting Kafka's storage",
        )  # fmt: skip
    started = processes.start(
        name,
        [java, *_BROKER_JVM, jvm_logging, "-cp", jars.KAFKA.classpath, "kafka.Kafka", config],
        log_dir=log_dir,
        cwd=data_dir,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: serves_metadata(bootstrap),
            what=f"waiting for the Kafka broker at {bootstrap}",
            timeout_s=timeout_s,
            watch=started,
            interval_s=0.25,
        )
    except BaseException:
        processes.stop(started.pid, grace_s=5)
        raise
    return KafkaBroker(
        bootstrap=bootstrap,
        port=port,
        controller_port=controller_port,
        data_dir=data_dir,
        process=started,
    )


def server_properties(port: int, controller_port: int, log_dir: pathlib.Path) -> str:
    """A combined broker and controller for one machine: every replication factor is 1."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={log_dir}",
            "num.partitions=1",
            # Topics are made through the admin API (as the operator does), never by a typo.
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "offsets.topic.replication.factor=1",
            # Fewer internal partitions than the default 50: the first consumer group starts sooner.
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=8",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "",
        ]
    )


def random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, never led by '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def serves_metadata(bootstrap: str) -> bool:
    """Whether the broker accepts connections and answers a metadata request naming itself."""
    host, port = bootstrap.rsplit(":", 1)
    # A plain connect first: librdkafka would log every refused connection to stderr.
    with socket.create_connection((host, int(port)), timeout=1):
        pass
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=5)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _ports(config: str) -> tuple[int, int]:
    found = dict(re.findall(r"(PLAINTEXT|CONTROLLER)://127\.0\.0\.1:(\d+)", config))
    return int(found["PLAINTEXT"]), int(found["CONTROLLER"])


def _two_free_ports() -> tuple[int, int]:
    port = processes.free_port()
    while (controller_port := processes.free_port()) == port:
        pass
    return port, controller_port


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java is not on PATH: install Java 17 (Debian: openjdk-17-jre-headless)")
    return java


def _run(command: list[str], *, what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{(result.stdout + result.stderr)[-4000:]}")
