"""The realtime gateway benchmark: the gateway beside its floor and the LiteLLM proxy, in one run.

On this machine, with one mock backend and the same load generator for all, it measures:

- the mock backend alone (the floor every proxy in front of it stays under);
- the gateway's cache-hit path (one repeated request; cache and Redis on, no auth, no limits),
  with 1 and 2 worker processes;
- the gateway's cache-miss path (every request distinct; API keys, a request rate limit too high
  to reject anything, metrics and cost on), with 1 and 2 worker processes;
- the LiteLLM proxy on the same mock backend (its own virtual environment, no database, no cache);
- the latency each adds to the mock's at a constant rate (the design's target is 500 req/s).

    .venv/bin/python bench/realtime.py                        # the full run, a few minutes
    .venv/bin/python bench/realtime.py --quick --skip-litellm # a smoke run, under a minute

It prints a Markdown report and writes it to --out. Every server it starts is stopped when it
ends, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import litellm_proxy
import loadgen
import machine
import paced
import payloads
import servers
import table

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

GATEWAY_WORKERS = (1, 2)
HIT_TARGET_PER_S = 10_000
MISS_TARGET_PER_S = 3_000
TARGET_RATE_PER_S = 500
ADDED_P50_TARGET_MS = 1.0
GATEWAY_API_KEY = "sk-tiers-bench-gateway"
NEVER_LIMITING_RPM = 1_000_000_000
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results" / "realtime.md"

MOCK = "mock backend alone (floor)"
HIT = "gateway cache hit"
MISS = "gateway cache miss, auth + limits"
LITELLM = "LiteLLM proxy"

T = TypeVar("T", bound="DataclassInstance")
Script = Callable[[str], str]
"""Lua text for wrk, given a tag that makes this run's requests unlike any earlier run's."""


@dataclasses.dataclass(frozen=True)
class Settings:
    load: loadgen.Load
    warmup_s: int
    repeat: int
    rates: tuple[int, ...]
    paced_duration_s: float
    litellm_workers: int | None
    """None: LiteLLM is skipped."""
    out: pathlib.Path


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/realtime.py",
        description="Gateway throughput and added latency beside the mock and the LiteLLM proxy.",
    )
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10, quick 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; medians (1)")
    parser.add_argument("--warmup", type=int, help="seconds of load before each measurement (2)")
    parser.add_argument(
        "--rates",
        default=f"{TARGET_RATE_PER_S},25",
        help="constant rates for added latency, req/s, comma-separated (500,25: the target's, "
        "and one a 1-worker LiteLLM proxy keeps up with on 2 cores)",
    )
    parser.add_argument("--paced-duration", type=float, help="seconds per rate (10, quick 3)")
    parser.add_argument("--litellm-workers", type=int, default=1, help="LiteLLM processes (1)")
    parser.add_argument("--skip-litellm", action="store_true", help="no LiteLLM install or run")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="Markdown report")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return Settings(
        load=loadgen.Load(
            duration_s=args.duration or (3 if args.quick else 10),
            connections=args.connections,
            threads=args.threads,
        ),
        warmup_s=args.warmup or (1 if args.quick else 2),
        repeat=args.repeat,
        rates=_rates(parser, args.rates),
        paced_duration_s=args.paced_duration or (3.0 if args.quick else 10.0),
        litellm_workers=None if args.skip_litellm else args.litellm_workers,
        out=args.out,
    )


def _rates(parser: argparse.ArgumentParser, text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(rate) for rate in text.split(",") if rate.strip())
    except ValueError:
        parser.error(f"--rates {text!r}: give whole requests per second, comma-separated")
    if not rates or min(rates) < 1:
        parser.error("--rates needs at least one rate of 1 or more")
    return rates


class Bench:
    """Measures one server at a time: a warm-up, then `repeat` runs, reported as medians."""

    def __init__(self, settings: Settings, wrk: str, workdir: pathlib.Path) -> None:
        self.settings = settings
        self._wrk = wrk
        self._workdir = workdir
        self._runs = 0

    def throughput(
        self, server: servers.Server, script: Script
    ) -> tuple[loadgen.Throughput, float]:
        """wrk's figures and the server's CPU microseconds per request, medians of the runs."""
        url = server.url + payloads.CHAT_PATH
        warmup = dataclasses.replace(self.settings.load, duration_s=self.settings.warmup_s)
        loadgen.run(self._wrk, url, self._script_file(script), warmup)
        runs, cpu_us_per_request = [], []
        for _ in range(self.settings.repeat):
            cpu_before = servers.cpu_seconds(server)
            run = loadgen.run(self._wrk, url, self._script_file(script), self.settings.load)
            cpu_used = servers.cpu_seconds(server) - cpu_before
            runs.append(run)
            cpu_us_per_request.append(cpu_used * 1e6 / max(1, run.requests))
        return median_of(runs), statistics.median(cpu_us_per_request)

    def latencies(
        self, server: servers.Server, headers: dict[str, str]
    ) -> dict[int, paced.PacedLatency]:
        url = server.url + payloads.CHAT_PATH
        results = {}
        for rate in self.settings.rates:
            pacing = paced.Pacing(
                rate_per_s=rate,
                duration_s=self.settings.paced_duration_s,
                warmup_s=min(1.0, self.settings.paced_duration_s),
            )
            runs = [
                paced.measure(url, headers, pacing, tag=self._next_tag())
                for _ in range(self.settings.repeat)
            ]
            results[rate] = median_of(runs)
        return results

    def _script_file(self, script: Script) -> pathlib.Path:
        tag = self._next_tag()
        path = self._workdir / f"wrk-{tag}.lua"
        path.write_text(script(tag))
        return path

    def _next_tag(self) -> str:
        # Each bench run starts its own Redis, so a counter keeps every run's requests apart.
        self._runs += 1
        return f"run{self._runs}"


@dataclasses.dataclass
class Results:
    throughput: list[table.ThroughputRow] = dataclasses.field(default_factory=list)
    latencies: dict[str, dict[int, paced.PacedLatency]] = dataclasses.field(default_factory=dict)

    def add(self, row: table.ThroughputRow) -> None:
        self.throughput.append(row)
        result = row.result
        print(
            f"  {row.scenario}, {row.workers} worker(s): {result.requests_per_s:,.0f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, failed {result.failed}, "
            f"{row.cpu_us_per_request:,.0f} CPU µs/request",
            file=sys.stderr,
            flush=True,
        )


def measure_all(bench: Bench, logs: pathlib.Path) -> Results:
    results = Results()
    plain, with_key = payloads.headers(None), payloads.headers(GATEWAY_API_KEY)
    same_request = _same_request(plain)
    with servers.redis(logs) as redis_server, servers.mock_backend(logs) as mock:
        _progress(MOCK)
        results.latencies[MOCK] = bench.latencies(mock, plain)
        results.add(table.ThroughputRow(MOCK, 1, *bench.throughput(mock, same_request)))

        for workers in GATEWAY_WORKERS:
            _progress(f"{HIT}, {workers} worker(s)")
            options = servers.GatewayOptions(label="hit", workers=workers)
            with servers.gateway(options, backend=mock, redis_server=redis_server, logs=logs) as gw:
                measured = bench.throughput(gw, same_request)
            results.add(table.ThroughputRow(HIT, workers, *measured, HIT_TARGET_PER_S))

        for workers in GATEWAY_WORKERS:
            _progress(f"{MISS}, {workers} worker(s)")
            options = servers.GatewayOptions(
                label="miss",
                workers=workers,
                api_keys_dir=_api_keys_dir(logs),
                requests_per_minute=NEVER_LIMITING_RPM,
            )
            with servers.gateway(options, backend=mock, redis_server=redis_server, logs=logs) as gw:
                if workers == 1:
                    results.latencies[MISS] = bench.latencies(gw, with_key)
                measured = bench.throughput(gw, _distinct(with_key))
            results.add(
                table.ThroughputRow(
                    MISS, workers, *measured, MISS_TARGET_PER_S, versus_litellm=True
                )
            )

        litellm_workers = bench.settings.litellm_workers
        if litellm_workers is not None:
            _progress(f"{LITELLM}, {litellm_workers} worker(s); its start takes a while")
            litellm_key = payloads.headers(litellm_proxy.MASTER_KEY)
            with litellm_proxy.running(mock, workers=litellm_workers, logs=logs) as proxy:
                results.latencies[LITELLM] = bench.latencies(proxy, litellm_key)
                measured = bench.throughput(proxy, _distinct(litellm_key))
            results.add(table.ThroughputRow(LITELLM, litellm_workers, *measured))
    return results


def _progress(step: str) -> None:
    print(f"{step} ...", file=sys.stderr, flush=True)


def _same_request(headers: dict[str, str]) -> Script:
    return lambda _: loadgen.same_request_script(headers)


def _distinct(headers: dict[str, str]) -> Script:
    return lambda tag: loadgen.distinct_requests_script(headers, tag)


def _api_keys_dir(workdir: pathlib.Path) -> pathlib.Path:
    keys = workdir / "api-keys"
    keys.mkdir(exist_ok=True)
    (keys / "bench").write_text(GATEWAY_API_KEY + "\n")
    return keys


def median_of(runs: Sequence[T]) -> T:
    """One result whose every number is the median of that number over the runs."""
    first = runs[0]
    medians = {}
    for field in dataclasses.fields(first):
        value = statistics.median(getattr(run, field.name) for run in runs)
        medians[field.name] = round(value) if isinstance(getattr(first, field.name), int) else value
    return dataclasses.replace(first, **medians)


def machine_facts(settings: Settings, wrk: str, litellm_version: str | None) -> dict[str, str]:
    load = settings.load
    return {
        **machine.common_facts(),
        "wrk": loadgen.wrk_version(wrk),
        "redis": machine.first_line(["redis-server", "--version"]),
        "litellm": litellm_version or "skipped",
        "load": f"wrk -t{load.threads} -c{load.connections} -d{load.duration_s}s after a "
        f"{settings.warmup_s}s warm-up; median of {settings.repeat} run(s)",
    }


def render(settings: Settings, facts: dict[str, str], results: Results) -> str:
    litellm = next((row.result for row in results.throughput if row.scenario == LITELLM), None)
    cores = facts["cores (nproc)"]
    sections = [
        "# Realtime gateway benchmark",
        table.facts(facts),
        "## Throughput",
        table.throughput(results.throughput, litellm),
        f"wrk, the server under test, the mock backend and Redis all share the same {cores} "
        "cores, so every figure is lower than the server would reach with the cores to itself; "
        "a second gateway worker competes with wrk and the mock for them. The hit path sends "
        "one repeated request (cache and Redis on; no auth, no limits). The miss path sends a "
        f"distinct request each time, with an API key, a limit of {NEVER_LIMITING_RPM:,} "
        "requests a minute (checked in Redis, never reached), metrics and cost. CPU µs/req is "
        "the user + system CPU time of the server's own processes (not wrk's, the mock's or "
        "Redis's) per answered request: less sensitive to other load on the machine than req/s. "
        + _litellm_note(settings),
        "## Added latency at a constant rate",
        table.added_latency(_latency_rows(settings, results)),
        f"An open-loop client sends requests every 1/rate s for {settings.paced_duration_s:g} s "
        "(after a 1 s warm-up) and times each one; added = the server's percentile minus the "
        "mock's at the same rate. The gateway runs the miss path with 1 worker. Skipped: sends "
        "left out while 128 requests were still waiting (the server fell behind).",
    ]
    return "\n\n".join(sections) + "\n"


def _litellm_note(settings: Settings) -> str:
    if settings.litellm_workers is None:
        return "LiteLLM was skipped (--skip-litellm)."
    return (
        "÷ LiteLLM divides by the LiteLLM proxy's req/s: "
        f"{settings.litellm_workers} worker process(es), one model on the mock, master key (its "
        "auth), no database, caching off, same distinct requests as the miss path."
    )


def _latency_rows(settings: Settings, results: Results) -> list[table.LatencyRow]:
    rows = []
    for rate in settings.rates:
        floor = results.latencies[MOCK][rate]
        rows.append(table.LatencyRow(MOCK, floor, floor))
        target = ADDED_P50_TARGET_MS if rate == TARGET_RATE_PER_S else None
        rows.append(
            table.LatencyRow(f"{MISS} (1 worker)", results.latencies[MISS][rate], floor, target)
        )
        if LITELLM in results.latencies:
            rows.append(table.LatencyRow(LITELLM, results.latencies[LITELLM][rate], floor))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        wrk = loadgen.find_wrk()
    except loadgen.WrkMissing as missing:
        print(missing, file=sys.stderr)
        return 2
    litellm_version = None if settings.litellm_workers is None else litellm_proxy.ensure_installed()
    facts = machine_facts(settings, wrk, litellm_version)
    print(table.facts(facts), file=sys.stderr, flush=True)
    try:
        with machine.sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="tiers-bench-") as tmp:
            workdir = pathlib.Path(tmp)
            results = measure_all(Bench(settings, wrk, workdir), workdir)
    except servers.ServerFailed as failed:
        print(f"a server did not start: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every server the bench started is stopped", file=sys.stderr)
        return 130
    facts["load average after the run"] = machine.load_average()
    table.publish(render(settings, facts, results), settings.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
