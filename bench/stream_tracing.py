"""What the stream job's traces cost per event in its Python worker: Python calls and CPU per
event with tracing off, on, and in the code before stream tracing existed, in one run.

Each variant runs in a process of its own that calls the job's scoring function
(`tiers.runtime.stream.scoring.score_frame`, what `mapInArrow` runs per Arrow batch) on batches
of `--events` Kafka records, against the same mock model server:

- **main, before stream tracing**: the runtime of `--baseline` (default: the commit before
  the stream's tracing), extracted with `git archive` and put first on PYTHONPATH;
- **tracing off**: this checkout, no `tracing` in its config (the records carry no header
  columns: an untraced job does not read them);
- **tracing on, no producer context**: every event starts a sampled trace (ratio 1);
- **tracing on, producer's sampled traceparent**: every event continues its producer's trace;
- **tracing on, producer's unsampled traceparent**: no span, the context passed on;
- **tracing on, ratio 0**: configured, no context, nothing sampled;
- **tracing on, each batch a task**: as "no producer context", and each batch ends as a
  `mapInArrow` task does, waiting until its spans are sent (`traces.task_ended`): the
  worst case of one Arrow batch per task.

Spans go to an OTLP/HTTP receiver in the parent (`tiers.devenv.otlp_receiver`, decoding the
real protobuf), so the receiver's work is not counted, the worker's encoding and posting are.
Python calls come from cProfile over one round, in the scoring thread only (the model client's
and the exporter's event loop thread is not profiled); CPU is `time.process_time()` of the
whole process (every thread) per event, the median of `--rounds`; the scoring thread's own
CPU (`time.thread_time()`, what a Spark task's thread pays) and its wall time per event (model
calls included), the medians too. The JVM's side is not here:
an untraced job's query is unchanged; a traced one reads and writes record headers.

    .venv/bin/python bench/stream_tracing.py              # about two minutes
    .venv/bin/python bench/stream_tracing.py --batches 2 --rounds 1   # a smoke run
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

import servers
import table
import variants

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "stream_tracing.md"
PRODUCER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"
WARMUP_BATCHES = 2
BASELINE = "main, before stream tracing"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events per batch (1000)")
    parser.add_argument("--batches", type=int, default=5, help="batches per round (5)")
    variants.add_arguments(
        parser, since="runtime/tiers/runtime/stream/traces.py", baseline=BASELINE, out=DEFAULT_OUT
    )
    return parser.parse_args()


# --- the child: one variant, in-process --------------------------------------------------------


def _frame(spec: dict[str, Any], batch: int) -> dict[str, list[Any]]:
    count = spec["events"]
    frame: dict[str, list[Any]] = {
        "key": [f"{spec['tag']}-{batch}-{i}" for i in range(count)],
        "value": [json.dumps({"text": f"review {spec['tag']} {batch} {i}"}) for i in range(count)],
        "partition": [i % 6 for i in range(count)],
        "offset": [batch * count + i for i in range(count)],
        "ts_ms": [int(time.time() * 1000)] * count,
    }
    if spec["tracing"] is not None:
        frame["traceparent"] = [spec["traceparent"]] * count
        frame["tracestate"] = [None] * count
    return frame


def child(spec_json: str) -> None:
    from tiers.runtime.stream import config, scoring

    spec = json.loads(spec_json)
    settings: dict[str, Any] = {
        "bootstrap": "unused:9092",
        "input_topic": "in",
        "output_topic": "out",
        "dead_letter_topic": "dlq",
        "checkpoint": "/tmp/unused",
        "model": {
            "target": {
                "name": "mock",
                "provider": "openai-compatible",
                "model": "*",
                "base_url": spec["mock"] + "/v1",
            },
            "model": "gpt-4o-mini",
            "prompt": "Summarize: {text}",
        },
    }
    if spec["tracing"] is not None:
        settings["tracing"] = spec["tracing"]
    parsed = config.StreamJobConfig.model_validate(settings)
    frames = iter(range(10**9))
    for _ in range(WARMUP_BATCHES):
        scoring.score_frame(_frame(spec, next(frames)), parsed)
    task_ended = _task_end(spec, parsed)
    cpu, thread, wall = [], [], []
    failed = 0
    for _ in range(spec["rounds"]):
        batches = [_frame(spec, next(frames)) for _ in range(spec["batches"])]
        started, began = time.process_time(), time.perf_counter()
        own = time.thread_time()
        for frame in batches:
            rows = scoring.score_frame(frame, parsed)
            failed += sum(row[2] != "out" for row in rows)
            task_ended()
        events = spec["batches"] * spec["events"]
        cpu.append((time.process_time() - started) / events * 1e6)
        thread.append((time.thread_time() - own) / events * 1e6)
        wall.append((time.perf_counter() - began) / events * 1e6)
    batches = [_frame(spec, next(frames)) for _ in range(spec["batches"])]
    profiler = cProfile.Profile()
    profiler.enable()
    for frame in batches:
        scoring.score_frame(frame, parsed)
    profiler.disable()
    calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
    if spec["tracing"] is not None:
        time.sleep(2 * spec["tracing"]["export_interval_s"])  # the last spans leave meanwhile
    print(
        json.dumps(
            {
                "calls": calls / (spec["batches"] * spec["events"]),
                "cpu_us": statistics.median(cpu),
                "wall_us": statistics.median(wall),
                "thread_us": statistics.median(thread),
                "failed": failed,
            }
        )
    )


def _task_end(spec: dict[str, Any], parsed: Any) -> Any:
    """What ends each batch: a task's end (its spans sent), or nothing."""
    if not spec.get("task_end"):
        return lambda: None
    from tiers.runtime.stream import traces

    return lambda: traces.task_ended(parsed)


# --- the parent: servers, variants, report -----------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child(args.child)
        return
    events = args.events * args.batches * (args.rounds + 1) + args.events * WARMUP_BATCHES
    prefix = "tiers-bench-stream-tracing-"
    with (
        variants.traced_run(__file__, args.baseline, prefix=prefix) as run,
        servers.mock_backend(run.work) as mock,
    ):
        common = {
            "mock": mock.url,
            "events": args.events,
            "batches": args.batches,
            "rounds": args.rounds,
            "traceparent": None,
            "tracing": None,
        }
        on = run.tracing_on
        cases: list[variants.Case] = [
            (BASELINE, {}, run.baseline),
            ("tracing off", {}, None),
            ("tracing on, no producer context", {"tracing": on}, None),
            (
                "tracing on, producer's sampled traceparent",
                {"tracing": on, "traceparent": PRODUCER + "1"},
                None,
            ),
            (
                "tracing on, producer's unsampled traceparent",
                {"tracing": on, "traceparent": PRODUCER + "0"},
                None,
            ),
            ("tracing on, ratio 0", {"tracing": {**on, "sample_ratio": 0.0}}, None),
            ("tracing on, each batch a task", {"tracing": on, "task_end": True}, None),
        ]
        rows = run.measure(cases, common)
    base = rows[0][1]
    body = table.markdown_table(
        [
            "variant",
            "scoring thread's Python calls/event",
            "vs main",
            "CPU µs/event",
            "vs main",
            "scoring thread's CPU µs/event",
            "wall µs/event",
            "spans/event",
            "dead letters",
        ],
        [
            [
                label,
                f"{result['calls']:.1f}",
                f"{result['calls'] - base['calls']:+.1f}",
                f"{result['cpu_us']:.1f}",
                f"{result['cpu_us'] / base['cpu_us']:.2f}x",
                f"{result['thread_us']:.1f}",
                f"{result['wall_us']:.1f}",
                f"{result['spans'] / events:.2f}",
                f"{result['failed']:.0f}",
            ]
            for label, result in rows
        ],
    )
    report = (
        "# Stream traces: cost per event in the job's Python worker\n\n"
        f"`bench/stream_tracing.py --events {args.events} --batches {args.batches} --rounds"
        f" {args.rounds}`: the job's scoring function driven in-process, one process per variant;"
        " CPU is the median of the rounds and moves with the machine's load, the calls do not.\n\n"
        f"{table.facts(run.facts)}\n\n{body}\n"
    )
    table.publish(report, args.out)


if __name__ == "__main__":
    main()
