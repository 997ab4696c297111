"""The Redis the operator runs takes no command without its password, and every client of it
(the gateway, the stream and batch jobs, the operator reading stats) logs in with the password
it is given by reference: tried against a real redis-server started exactly as the operator's
manifest starts it (its command, arguments and environment)."""

from __future__ import annotations

import asyncio
import decimal
import json
import pathlib
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import Processes

from tiers import api
from tiers.devenv import processes
from tiers.operator import batch_runs, stats_reader
from tiers.operator.manifests import labels, stats_store
from tiers.operator.manifests import redis as managed_redis
from tiers.runtime import modelcall
from tiers.runtime.batch import config as batch_config
from tiers.runtime.batch import progress, publisher
from tiers.runtime.stats import window
from tiers.runtime.stream import config as stream_config
from tiers.runtime.stream import written

OWNER = labels.Owner(api.API_VERSION, api.REALTIME_ENDPOINT.kind, "chat", "ns", "uid-1")
PASSWORD = managed_redis.new_password()


def reply(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(command)
        return sock.recv(128)


@pytest.fixture
def locked(tmp_path: pathlib.Path) -> Iterator[str]:
    """The managed Redis as its Deployment runs it, on a loopback port; yields its URL."""
    (container,) = managed_redis.render_deployment(OWNER)["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "chat-redis", "key": "password"}
    port = processes.free_port()
    started = processes.start(
        "redis",
        [*container["command"], *container["args"], "--port", str(port), "--bind", "127.0.0.1"],
        log_dir=tmp_path,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", env["name"]: PASSWORD},
    )
    processes.wait_until(
        lambda: reply(port, b"PING\r\n"), what="redis-server", timeout_s=20, watch=started
    )
    yield f"redis://127.0.0.1:{port}/0"
    processes.stop(started.pid, grace_s=5)


def test_the_managed_redis_refuses_commands_without_its_password_on_no_command_line(
    locked: str,
) -> None:
    port = int(locked.rsplit(":", 1)[1].split("/")[0])
    assert reply(port, b"PING\r\n").startswith(b"-NOAUTH")
    assert redis.Redis.from_url(locked, password=PASSWORD).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(locked, password="not-it").ping()
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert PASSWORD.encode() not in cmdline.read_bytes(), cmdline
        except OSError:
            continue  # a process that ended meanwhile


def test_the_gateway_logs_in_with_the_password_from_the_variable_its_config_names(
    locked: str,
    services: Processes,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    settings = {
        "endpoint": "ns/chat",
        "backends": [{"name": "mock", "provider": "openai-compatible", "model": "*",
                      "base_url": f"{mock}/v1"}],
        "redis_url": locked,
        "redis_password_env": "TIERS_REDIS_PASSWORD",
    }  # fmt: skip
    config_file = tmp_path / "gateway.json"
    config_file.write_text(json.dumps(settings))
    monkeypatch.setenv("TIERS_REDIS_PASSWORD", PASSWORD)
    gateway = services.start("gateway", "tiers.runtime.gateway", "--config", str(config_file))
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()

    def cache_outcome() -> str:
        request = urllib.request.Request(
            gateway + "/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.headers["x-tiers-cache"])

    assert cache_outcome() == "miss"
    stored = redis.Redis.from_url(locked, password=PASSWORD)
    deadline = time.monotonic() + 30
    while not stored.dbsize() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored.dbsize() >= 1, "the answer reached Redis: the gateway logged in"
    assert cache_outcome() == "hit"


def test_a_job_publishes_with_its_password_and_the_operator_reads_it_back(
    locked: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(stats_store.PASSWORD_ENV, PASSWORD)
    settings = batch_config.BatchJobConfig(
        job="ns/triage", run="r1",
        input=batch_config.InputConfig(uri=str(tmp_path / "in.jsonl")),
        output=batch_config.OutputConfig(uri=str(tmp_path / "out")),
        model=modelcall.ModelCallConfig(
            target=modelcall.EndpointTarget(url="http://127.0.0.1:9/v1"), model="m",
            prompt="{text}",
        ),
        stats_redis_url=locked, stats_redis_password_env=stats_store.PASSWORD_ENV,
    )  # fmt: skip
    sent = progress.Progress.starting(
        state="Running", attempt=1, total=10, skipped=0, skipped_cost_usd=decimal.Decimal(0),
        now_s=time.time(),
    )  # fmt: skip
    counts = window.Counts()
    counts.record(latency_ms=12, tokens_in=3, tokens_out=4, cost_usd=decimal.Decimal("0.001"))
    jobs = publisher.Publisher(settings)
    jobs.publish(sent, counts=counts)
    jobs.close()

    async def read_back() -> tuple[progress.Progress | None, Any, Any]:
        where = stats_reader.Target(locked, PASSWORD)
        found = await batch_runs.read_progress(where, "ns/triage", "r1")
        summary = await stats_reader.summary(where, "ns/triage", minutes=5)
        refused = await stats_reader.summary(
            stats_reader.Target(locked, None), "ns/triage", minutes=5
        )
        return found, summary, refused

    found, summary, refused = asyncio.run(read_back())
    assert found is not None and (found.state, found.total) == ("Running", 10)
    assert summary is not None and summary.units == 1
    assert refused is None, "without the password the operator reads nothing"


def test_a_stats_redis_that_does_not_answer_is_told_apart_from_a_run_without_progress(
    locked: str,
) -> None:
    """No progress yet: None (status keeps its figures, current). Redis not answering:
    `ProgressUnavailable` (status keeps them, marked stale)."""
    closed = processes.free_port()  # nothing listens there

    async def read() -> tuple[Any, BaseException | None]:
        none = await batch_runs.read_progress(
            stats_reader.Target(locked, PASSWORD), "ns/quiet", "r1"
        )
        try:
            await batch_runs.read_progress(
                stats_reader.Target(f"redis://127.0.0.1:{closed}/0", None), "ns/quiet", "r1"
            )
        except batch_runs.ProgressUnavailable as error:
            return none, error
        return none, None

    none, refused = asyncio.run(read())
    assert none is None
    assert isinstance(refused, batch_runs.ProgressUnavailable)


def test_the_stream_job_publishes_its_stats_with_its_password(
    locked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's side of the job: what a finished task wrote, timed and published."""
    monkeypatch.setenv(stats_store.PASSWORD_ENV, PASSWORD)
    settings = stream_config.StreamJobConfig(
        pipeline="ns/summaries", bootstrap="unused:9092", input_topic="in",
        output_topic="out", dead_letter_topic="dlq", checkpoint="/tmp/unused",
        model=modelcall.ModelCallConfig(
            target=modelcall.EndpointTarget(url="http://127.0.0.1:9/v1"), model="m",
            prompt="{text}",
        ),
        stats_redis_url=locked, stats_redis_password_env=stats_store.PASSWORD_ENV,
    )  # fmt: skip
    stats = written.Publisher(settings)
    sent_ms = int(time.time() * 1000) - 250
    stats.written(written.Tally(window.Counts(units=1), Counter({sent_ms: 1}), {0: 42}))
    stats.stop()

    async def read_back() -> tuple[Any, Any]:
        where = stats_reader.Target(locked, PASSWORD)
        summary = await stats_reader.summary(where, "ns/summaries", minutes=5)
        return summary, await stats_reader.processed_offsets(where, "ns/summaries")

    summary, offsets = asyncio.run(read_back())
    assert summary is not None and summary.units == 1
    assert abs(summary.p95_ms - 250) <= 20, "timed from the event's timestamp to its write"
    assert offsets == {0: 42}
