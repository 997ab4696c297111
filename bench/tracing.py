"""What the gateway's traces cost on its cache-miss path: Python calls and CPU per request with
tracing off, on, and in the code before tracing existed, in one run.

Each variant runs in a process of its own that drives the gateway's ASGI application directly
(no HTTP server in front: what is counted is the gateway's own work, its Redis and backend
clients, and with tracing on the span export too), against the same Redis and mock backend:

- **main, before tracing**: the gateway of `--baseline` (default: the commit before the tracing
  one), extracted with `git archive` and put first on PYTHONPATH;
- **tracing off**: this checkout, no `tracing` in its config;
- **tracing on**: every request sampled, spans exported to an OTLP/HTTP receiver in this process
  (`tiers.devenv.otlp_receiver`, decoding the real protobuf), so the receiver's work is not
  counted but the gateway's encoding and posting are;
- **tracing on, ratio 0**: configured, but no trace sampled (what a low ratio mostly costs).

Requests are distinct (a miss each), with an API key and a request limit never reached, as the
realtime bench's miss path. Python calls come from cProfile over `--requests` requests; CPU is
`time.process_time()` over the same count without the profiler, the median of `--rounds`.

    .venv/bin/python bench/tracing.py              # about a minute
    .venv/bin/python bench/tracing.py --requests 500 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pathlib
import pstats
import statistics
import time
from typing import Any

import payloads
import servers
import table
import variants

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "tracing.md"
API_KEY = "sk-tiers-bench-tracing"
CALLER_TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WARMUP = 200
BASELINE = "main, before tracing"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    variants.add_arguments(
        parser, since="runtime/tiers/runtime/gateway/traces.py", baseline=BASELINE, out=DEFAULT_OUT
    )
    return parser.parse_args()


# --- the child: one variant, driven in-process -------------------------------------------------


async def _drive(spec: dict[str, Any]) -> dict[str, float]:
    from tiers.runtime.gateway import app, config

    settings: dict[str, Any] = {
        "endpoint": "bench/tracing",
        "backends": [
            {
                "name": "mock",
                "provider": "openai-compatible",
                "model": "*",
                "base_url": spec["mock"] + "/v1",
            }
        ],
        "redis_url": spec["redis"],
        "api_keys_dir": spec["keys"],
        "rate_limits": {"requests_per_minute": 1_000_000_000},
    }
    if spec["tracing"] is not None:
        settings["tracing"] = spec["tracing"]
    gateway = app.Gateway(config.GatewayConfig.model_validate(settings))
    await gateway.startup()
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {API_KEY}".encode()),
    ]
    if spec["traceparent"]:
        headers.append((b"traceparent", CALLER_TRACEPARENT))
    statuses: list[int] = []
    counter = iter(range(10**9))

    async def one() -> None:
        body = payloads.chat_body(f"{spec['tag']}-{next(counter)}")
        scope = {"type": "http", "method": "POST", "path": payloads.CHAT_PATH, "headers": headers}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await gateway(scope, receive, send)

    for _ in range(WARMUP):
        await one()
    cpu = []
    for _ in range(spec["rounds"]):
        started = time.process_time()
        for _ in range(spec["requests"]):
            await one()
        cpu.append((time.process_time() - started) / spec["requests"] * 1e6)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(spec["requests"]):
        await one()
    profiler.disable()
    await gateway.shutdown()
    stats = pstats.Stats(profiler)
    calls = stats.total_calls  # type: ignore[attr-defined]
    # The gateway's and the tracing's own functions: what the code path decides, unlike the
    # event loop's and the clients' callbacks, whose count follows how replies arrive in chunks.
    own = sum(
        counts[1]
        for (path, _, _), counts in stats.stats.items()  # type: ignore[attr-defined]
        if "/tiers/runtime/gateway/" in path or "/tiers/runtime/tracing/" in path
    )
    failed = sum(status != 200 for status in statuses)
    return {
        "calls": calls / spec["requests"],
        "own_calls": own / spec["requests"],
        "cpu_us": statistics.median(cpu),
        "failed": failed,
    }


def child(spec_json: str) -> None:
    import uvloop

    spec = json.loads(spec_json)
    result = uvloop.run(_drive(spec))
    print(json.dumps(result))


# --- the parent: servers, variants, report -----------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child(args.child)
        return
    with variants.traced_run(__file__, args.baseline, prefix="tiers-bench-tracing-") as run:
        keys = run.work / "api-keys"
        keys.mkdir()
        (keys / "bench").write_text(API_KEY + "\n")
        with servers.redis(run.work) as redis_server, servers.mock_backend(run.work) as mock:
            common = {
                "mock": mock.url,
                "redis": f"redis://{servers.HOST}:{redis_server.port}/0",
                "keys": str(keys),
                "requests": args.requests,
                "rounds": args.rounds,
                "traceparent": False,
                "tracing": None,
            }
            on = run.tracing_on
            cases: list[variants.Case] = [
                (BASELINE, {}, run.baseline),
                ("tracing off", {}, None),
                ("tracing on (every request sampled)", {"tracing": on}, None),
                ("tracing on, caller's traceparent", {"tracing": on, "traceparent": True}, None),
                ("tracing on, ratio 0", {"tracing": {**on, "sample_ratio": 0.0}}, None),
            ]
            rows = run.measure(cases, common)
    base = rows[0][1]
    body = table.markdown_table(
        [
            "variant",
            "Python calls/req",
            "vs main",
            "gateway + tracing calls/req",
            "vs main",
            "CPU µs/req",
            "vs main",
            "spans/req",
            "failed",
        ],
        [
            [
                label,
                f"{result['calls']:.1f}",
                f"{result['calls'] - base['calls']:+.1f}",
                f"{result['own_calls']:.1f}",
                f"{result['own_calls'] - base['own_calls']:+.1f}",
                f"{result['cpu_us']:.0f}",
                f"{result['cpu_us'] / base['cpu_us']:.2f}x",
                f"{result['spans'] / (args.requests * (args.rounds + 1) + WARMUP):.2f}",
                f"{result['failed']:.0f}",
            ]
            for label, result in rows
        ],
    )
    report = (
        "# Gateway traces: cost on the cache-miss path\n\n"
        f"`bench/tracing.py --requests {args.requests} --rounds {args.rounds}`: the gateway's"
        " ASGI app driven in-process, one process per variant; CPU is the median of the rounds"
        " and moves with the machine's load; the gateway + tracing calls barely do (the total"
        " follows how replies arrive in chunks).\n\n"
        f"{table.facts(run.facts)}\n\n{body}\n"
    )
    table.publish(report, args.out)


if __name__ == "__main__":
    main()
