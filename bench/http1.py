"""The gateway's HTTP/1.1 client beside aiohttp, calling the same mock backend in the same run.

Each client runs in this process on uvloop, with `--concurrency` calls in flight for
`--duration` seconds, after a warm-up; the mock backend is its own process. CPU µs/req is this
process's user + system CPU time per answered call, the cost that lands on a gateway.

    .venv/bin/python bench/http1.py                  # 5 s per client, 3 rounds
    .venv/bin/python bench/http1.py --duration 2 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import uvloop
from tiers.runtime.providers import http1

import machine
import payloads
import servers
import table

Call = Callable[[bytes], Awaitable[int]]
HEADERS = {"content-type": "application/json"}


@dataclasses.dataclass(frozen=True)
class Result:
    requests_per_s: float
    cpu_us_per_request: float


async def measure(call: Call, *, concurrency: int, duration_s: float) -> Result:
    counter = itertools.count()
    answered = 0
    deadline = 0.0

    async def worker() -> None:
        nonlocal answered
        while time.monotonic() < deadline:
            status = await call(payloads.chat_body(f"http1-{next(counter)}"))
            assert status == 200, f"the mock answered {status}"
            answered += 1

    deadline = time.monotonic() + duration_s
    cpu_before, started = os.times(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_after, elapsed = os.times(), time.monotonic() - started
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return Result(answered / elapsed, cpu_s * 1e6 / max(1, answered))


async def with_http1(url: str, settings: argparse.Namespace) -> Result:
    pool = http1.Pool()

    async def call(body: bytes) -> int:
        response = await pool.request("POST", url, headers=HEADERS, body=body, timeout_s=30)
        return response.status

    try:
        await measure(call, concurrency=settings.concurrency, duration_s=1)
        return await measure(call, concurrency=settings.concurrency, duration_s=settings.duration)
    finally:
        await pool.close()


async def with_aiohttp(url: str, settings: argparse.Namespace) -> Result:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def call(body: bytes) -> int:
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                return response.status

        await measure(call, concurrency=settings.concurrency, duration_s=1)
        return await measure(call, concurrency=settings.concurrency, duration_s=settings.duration)


CLIENTS = {"tiers http1": with_http1, "aiohttp": with_aiohttp}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/http1.py", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client; medians (3)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (64)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    print(table.facts({"load average before": machine.load_average()}), file=sys.stderr)
    results: dict[str, list[Result]] = {name: [] for name in CLIENTS}
    with (
        tempfile.TemporaryDirectory(prefix="tiers-bench-http1-") as tmp,
        servers.mock_backend(pathlib.Path(tmp)) as mock,
    ):
        url = mock.url + payloads.CHAT_PATH
        for _ in range(settings.rounds):  # alternating, so drift in load hits both alike
            for name, client in CLIENTS.items():
                results[name].append(uvloop.run(client(url, settings)))
    rows = []
    baseline = statistics.median(r.cpu_us_per_request for r in results["aiohttp"])
    for name, runs in results.items():
        cpu = statistics.median(r.cpu_us_per_request for r in runs)
        rows.append(
            [
                name,
                f"{statistics.median(r.requests_per_s for r in runs):,.0f}",
                f"{cpu:,.0f}",
                f"{cpu / baseline:.2f}x",
            ]
        )
    print(
        f"- load average after: {machine.load_average()}\n"
        f"- {settings.concurrency} calls in flight, {settings.duration:g} s per round, "
        f"median of {settings.rounds} round(s)\n"
    )
    print(table.markdown_table(["client", "req/s", "CPU µs/req", "CPU vs aiohttp"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
