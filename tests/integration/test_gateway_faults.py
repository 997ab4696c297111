"""The gateway under faults, as a client sees it: real gateway processes, real Redis, mockllm
backends (real HTTP servers) told to hang, to answer garbage or to drop the connection.

Redis SIGKILLed or hung (SIGSTOP) under a bounded load on 127.0.0.1: every request is answered
within its bound, the gateway recovers once Redis is back, and the operator's stats reader (the
code a reconcile runs, here in this process) gives up within its timeout, so the endpoint's
status keeps its last figures and marks them stale. A broken backend: a clear OpenAI-style
error, the fallback where one is configured, and no connection left open.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import json
import os
import pathlib
import signal
import statistics
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from typing import Any

import openai
import pytest
from conftest import Processes, wait_for
from test_gateway import GATEWAY, HELLO, MOCK, client, post

from tiers.api import realtime
from tiers.devenv import processes
from tiers.devenv import redis_server as redis_server_module
from tiers.operator import realtime_status, stats_reader
from tiers.runtime import stats
from tiers.runtime.mockllm import control

REQUEST_BOUND_S = 3.0
"""The most a request may take while Redis is gone: the gateway gives Redis 0.5 s a command."""
MEDIAN_BOUND_S = 0.1
"""The median request while Redis is gone: after its first failure (a refused connect or a
command that timed out) the gateway skips Redis at once for a back-off, so a hung Redis does not
slow every request by its timeout (0.7 s each before)."""
FAULT_S = 4.0
"""How long Redis stays killed or hung while the load runs."""


def write_config(path: pathlib.Path, **settings: Any) -> str:
    path.write_text(json.dumps(settings))
    return str(path)


def backend(name: str, url: str, *, priority: int = 0, timeout_ms: int = 30000) -> dict[str, Any]:
    return {"name": name, "provider": "openai-compatible", "model": "*",
            "base_url": f"{url}/v1", "priority": priority, "timeout_ms": timeout_ms}  # fmt: skip


def established(*, local_port: int | None = None, remote_port: int | None = None) -> int:
    """Open (ESTABLISHED) IPv4 TCP connections on this machine with that local or remote port."""
    count = 0
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, state, *_ = line.split()
        if state != "01":
            continue
        if local_port is not None and int(local.rsplit(":", 1)[1], 16) != local_port:
            continue
        if remote_port is not None and int(remote.rsplit(":", 1)[1], 16) != remote_port:
            continue
        count += 1
    return count


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# --- Redis killed or hung under load -------------------------------------------------------


@dataclasses.dataclass
class Answers:
    """What the load loop got back in one phase: statuses and latencies."""

    statuses: list[int] = dataclasses.field(default_factory=list)
    latencies_s: list[float] = dataclasses.field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.latencies_s)

    def summary(self) -> str:
        slowest = max(self.latencies_s, default=0.0)
        return (
            f"{len(self.statuses)} answered, median {self.median_s * 1000:.0f} ms,"
            f" max {slowest * 1000:.0f} ms"
        )


def load(gateway: str, seconds: float, *, workers: int = 6, limit: int = 3000) -> Answers:
    """A bounded load on 127.0.0.1: `workers` clients calling for `seconds` (at most `limit`
    calls), 40 distinct prompts so that cache hits and misses both happen."""
    answers = Answers()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = iter(range(limit))

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i % 40}"}]}
            started = time.monotonic()
            try:
                status = post(gateway + "/v1/chat/completions", body)[0]
            except OSError:
                status = 0  # no answer at all (refused, reset, timed out)
            with lock:
                answers.statuses.append(status)
                answers.latencies_s.append(time.monotonic() - started)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    return answers


class OperatorLoop:
    """An event loop of its own in a thread, as the operator's: its stats reader keeps one
    Redis client per target, bound to the loop that made it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def operator_loop() -> Iterator[OperatorLoop]:
    running = OperatorLoop()
    yield running
    running.close()


def status_after_reading(
    loop: OperatorLoop, redis_url: str, subject: str, previous: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """The status a reconcile writes from the stats it reads (as `realtime_handlers.observe`
    does), and how long the read took."""
    started = time.monotonic()
    summary: stats.Summary | None = loop.run(
        stats_reader.summary(stats_reader.Target(redis_url), subject, minutes=5)
    )
    took = time.monotonic() - started
    observed = realtime_status.Observed(
        gateway={"availableReplicas": 1, "readyReplicas": 1}, redis=None, managed_redis=False,
        summary=summary, stats_unavailable=summary is None,
    )  # fmt: skip
    spec = realtime.RealtimeEndpointSpec.model_validate(
        {"model": "m", "backends": [{"name": "a", "provider": "openai", "model": "m"}]}
    )
    body = {"metadata": {"generation": 1}, "status": previous}
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    status = realtime_status.desired_status(spec, observed, body=body, now=now)
    realtime.RealtimeEndpointStatus.model_validate(status)
    return status, took


def redis_state(gateway: str, *, after_a_request: bool = False) -> str:
    """What /healthz says of Redis: what the gateway's last request found; `after_a_request`
    sends one first (once a back-off is over, a request is what tries Redis again)."""
    if after_a_request:
        body = {"model": "gpt-4o-mini", "messages": HELLO}
        assert post(gateway + "/v1/chat/completions", body)[0] == 200
    with urllib.request.urlopen(gateway + "/healthz", timeout=5) as response:
        return str(json.load(response)["redis"])


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_redis_killed_or_hung_under_load_every_request_is_answered_and_status_says_stale(
    fault: signal.Signals,
    services: Processes,
    redis_server: redis_server_module.RedisServer,
    operator_loop: OperatorLoop,
    tmp_path: pathlib.Path,
) -> None:
    subject = f"tests/redis-{fault.name.lower()}"
    mock = services.start("mockllm", MOCK)
    gateway = services.start("gateway", GATEWAY, "--config", write_config(
        tmp_path / "gateway.json", endpoint=subject, backends=[backend("mock", mock)],
        redis_url=redis_server.url, rate_limits={"requests_per_minute": 1_000_000},
    ))  # fmt: skip
    before = load(gateway, 2.0)
    assert set(before.statuses) == {200}, before.statuses

    # The gateways publish their stats once a second: the figures reach status.
    status = wait_for(
        lambda: (s := status_after_reading(operator_loop, redis_server.url, subject, {})[0])
        .get("traffic", {}).get("requests", 0) >= len(before.statuses) and s,
        timeout_s=15, what="the load's requests in the stats",
    )  # fmt: skip
    assert status["latency"]["window"] == "5m" and status["latency"]["stale"] is False

    restarted: redis_server_module.RedisServer | None = None
    pid = redis_server.process.pid
    os.kill(pid, fault)
    try:
        during = load(gateway, FAULT_S)
        # A reconcile meanwhile: the read gives up within its timeout, the figures stay, stale.
        down, took = status_after_reading(operator_loop, redis_server.url, subject, status)
        assert took < 3.0, f"the stats read took {took:.1f} s with Redis {fault.name}"
        assert down["traffic"] == {**status["traffic"], "stale": True}, "the last figures, kept"
        assert down["latency"] == {**status["latency"], "stale": True}
        assert down["cost"] == {**status["cost"], "stale": True}
        assert redis_state(gateway) == "down"
    finally:
        if fault == signal.SIGSTOP:
            os.kill(pid, signal.SIGCONT)
        else:
            processes.stop(pid)
            restarted = redis_server_module.start(tmp_path / "logs", port=redis_server.port)
    try:
        print(f"Redis {fault.name}: before {before.summary()}; during {during.summary()}")
        assert set(during.statuses) == {200}, f"every request answered: {during.statuses}"
        assert max(during.latencies_s) < REQUEST_BOUND_S, during.summary()
        assert during.median_s < MEDIAN_BOUND_S, f"Redis skipped at once: {during.summary()}"
        # Back: the gateway uses Redis again by itself (its first request after the back-off
        # probes it), and status is fresh, no longer stale.
        after = load(gateway, 1.0)
        assert set(after.statuses) == {200}
        wait_for(
            lambda: redis_state(gateway, after_a_request=True) == "up",
            timeout_s=10, what="the gateway's Redis",
        )  # fmt: skip
        fresh = wait_for(
            lambda: (s := status_after_reading(operator_loop, redis_server.url, subject, down)[0])
            ["latency"]["stale"] is False and s,
            timeout_s=15, what="fresh figures",
        )  # fmt: skip
        assert fresh["latency"]["observedAt"] >= status["latency"]["observedAt"]
    finally:
        if restarted is not None:
            restarted.stop()


# --- A backend that hangs, answers garbage, or drops the connection -------------------------


FAULTS = {
    "timeout": "timed out after 1000 ms",
    "garbage": "not a JSON object",
    "cut": "closed the connection mid-response",
}
"""The mock's fault, and what the client's error says of it when no backend is left."""
STREAM_FAULTS = {
    "timeout": "timed out after 1000 ms",  # before the stream's headers: a plain 502
    "garbage": "broke off the stream: an event is not JSON",
    "cut": "broke off the stream: the server closed the connection mid-response",
}


def test_a_backend_that_hangs_answers_garbage_or_drops_the_connection(
    services: Processes, tmp_path: pathlib.Path
) -> None:
    primary = services.start("mock-primary", MOCK)
    secondary = services.start("mock-secondary", MOCK)
    common = {
        "retries": {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 50},
        # Every fault is tried the same way: no circuit opens between them.
        "circuit_breaker": {"failure_threshold": 1000},
        "cache": {"enabled": False},
    }
    alone = services.start("gateway-alone", GATEWAY, "--config", write_config(
        tmp_path / "alone.json", backends=[backend("primary", primary, timeout_ms=1000)], **common,
    ))  # fmt: skip
    paired = services.start("gateway-paired", GATEWAY, "--config", write_config(
        tmp_path / "paired.json", **common, backends=[
            backend("primary", primary, timeout_ms=1000),
            backend("secondary", secondary, priority=1, timeout_ms=1000),
        ],
    ))  # fmt: skip
    for gateway in (alone, paired):
        with client(gateway) as sdk:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    upstream_baseline = established(remote_port=port_of(primary))

    for fault, said in FAULTS.items():
        # No fallback: a clear OpenAI-style error, whole or as the stream's last event.
        control.fail_next(primary, 2, status=fault)
        with client(alone) as sdk, pytest.raises(openai.APIStatusError) as raised:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert raised.value.status_code == 502, fault
        assert "All backends failed: primary: " in raised.value.message
        assert said in raised.value.message, raised.value.message

        # A stream the backend breaks after its headers is not retried: one attempt.
        control.fail_next(primary, 2 if fault == "timeout" else 1, status=fault)
        with client(alone) as sdk, pytest.raises(openai.APIError) as broken:
            for _ in sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True):
                pass
        assert STREAM_FAULTS[fault] in broken.value.message, broken.value.message

        # A fallback configured: the client never sees the fault.
        control.fail_next(primary, 2, status=fault)
        with client(paired) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
        assert (
            raw.http_response.status_code == 200 and raw.headers["x-tiers-backend"] == "secondary"
        )
        assert raw.parse().choices[0].message.content

        # Nothing left hanging: the gateways' connections to the primary back to where they
        # were, and none from the test's clients still open on either gateway.
        wait_for(
            lambda: established(remote_port=port_of(primary)) <= upstream_baseline,
            timeout_s=10, what=f"connections to the primary to close after {fault}",
        )  # fmt: skip
        for gateway in (alone, paired):
            wait_for(
                lambda: established(local_port=port_of(gateway)) == 0,  # noqa: B023
                timeout_s=10, what=f"client connections to {gateway} to close after {fault}",
            )  # fmt: skip
    outcomes = control.stats(primary)["outcomes"]
    assert outcomes["garbage"] == outcomes["cut"] == 5, outcomes
