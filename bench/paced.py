"""Latency at a constant request rate: an open-loop client that sends on a schedule.

wrk saturates a server, so its latency is mostly queueing. Here requests leave every 1/rate
seconds whether or not earlier ones have been answered, and each is timed from the moment it is
sent to the last byte of its reply. A server that cannot keep up collects requests in flight; past
`max_in_flight` the client skips sends (counted) instead of piling up without bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time

import aiohttp
import uvloop

from payloads import chat_body

_REQUEST_TIMEOUT_S = 10.0


@dataclasses.dataclass(frozen=True)
class Pacing:
    rate_per_s: int
    duration_s: float
    warmup_s: float
    max_in_flight: int = 128


@dataclasses.dataclass(frozen=True)
class PacedLatency:
    rate_per_s: int
    answered_per_s: float
    """Replies with status 200 per second of the measured period."""
    p50_ms: float
    p99_ms: float
    failed: int
    skipped: int
    """Sends left out while `max_in_flight` requests were still waiting: the server fell behind."""


def measure(url: str, headers: dict[str, str], pacing: Pacing, *, tag: str) -> PacedLatency:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_measure(url, headers, pacing, tag))


@dataclasses.dataclass
class _Tally:
    latencies_s: list[float] = dataclasses.field(default_factory=list)
    failed: int = 0
    skipped: int = 0
    in_flight: int = 0


async def _measure(url: str, headers: dict[str, str], pacing: Pacing, tag: str) -> PacedLatency:
    warmup_count = round(pacing.rate_per_s * pacing.warmup_s)
    total = warmup_count + round(pacing.rate_per_s * pacing.duration_s)
    warmup, measured = _Tally(), _Tally()
    connector = aiohttp.TCPConnector(limit=pacing.max_in_flight)
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        for index in range(total):
            delay = start + index / pacing.rate_per_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tally = warmup if index < warmup_count else measured
            if warmup.in_flight + measured.in_flight >= pacing.max_in_flight:
                tally.skipped += 1
                continue
            body = chat_body(f"{tag}-{index}")
            tally.in_flight += 1
            task = asyncio.create_task(_send(session, url, headers, body, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return _summary(measured, pacing)


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    tally: _Tally,
) -> None:
    """Sends one request; the caller has counted it in flight already."""
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    finally:
        tally.in_flight -= 1
    if ok:
        tally.latencies_s.append(time.perf_counter() - started)
    else:
        tally.failed += 1


def _summary(tally: _Tally, pacing: Pacing) -> PacedLatency:
    latencies_ms = sorted(seconds * 1000 for seconds in tally.latencies_s) or [float("nan")]
    return PacedLatency(
        rate_per_s=pacing.rate_per_s,
        answered_per_s=len(tally.latencies_s) / pacing.duration_s,
        p50_ms=statistics.median(latencies_ms),
        p99_ms=_percentile(latencies_ms, 99),
        failed=tally.failed,
        skipped=tally.skipped,
    )


def _percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(0, min(len(sorted_values) - 1, round(percent / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]
