"""The stream benchmark's command line: its settings, and the variants a run measures (how the job
calls the model, and the mock's latency)."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Literal

import options

CHAT_EVENTS_CAP = 100_000
"""Events preloaded for a one-request-per-event variant: at its few thousand events/s, more
events only make the run longer, not the figure steadier."""
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results" / "stream.md"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One pipeline run: how the job calls the model, and the mock model's latency."""

    rows_per_request: int
    """Events per model request: 1 calls chat, above 1 calls completions with a list of prompts;
    0 calls no model at all (`passthrough_job.py`: Spark's own floor)."""
    mock_latency_ms: int

    @property
    def passthrough(self) -> bool:
        return self.rows_per_request == 0

    @property
    def route(self) -> Literal["chat", "completions"]:
        return "completions" if self.rows_per_request > 1 else "chat"

    @property
    def name(self) -> str:
        """Unique per variant: it names the run's topics, checkpoint, event log, config and logs."""
        if self.passthrough:
            return "passthrough"
        return f"{self.route}{self.rows_per_request}-mock{self.mock_latency_ms}ms"

    @property
    def calls(self) -> str:
        if self.passthrough:
            return "none: Spark pass-through"
        noun = "event" if self.rows_per_request == 1 else "events"
        return f"{self.route}, {self.rows_per_request} {noun}/request"

    @property
    def mock(self) -> str:
        return "-" if self.passthrough else f"{self.mock_latency_ms} ms"


@dataclasses.dataclass(frozen=True)
class Settings:
    ceiling_events: int
    events: int
    partitions: int
    mock_latencies_ms: tuple[int, ...]
    rates: tuple[int, ...]
    duration_s: float
    warmup_s: float
    """Seconds at each rate before the timed part: the job settles into the rate first."""
    trigger_ms: int
    max_offsets: int
    max_in_flight: int
    rows_per_request: tuple[int, ...]
    """Events per model request, one variant each: 1 calls chat, above 1 calls completions."""
    out: pathlib.Path
    workdir: pathlib.Path | None
    """Where logs, checkpoints and Spark's event logs go and stay; None: a temporary folder."""
    spark_conf: dict[str, str]
    """Spark settings over the job's own, e.g. to compare JIT or batch-size choices."""
    passthrough: bool
    """Also run the job with the model taken out, the ceiling the real job is divided by."""

    @property
    def variants(self) -> list[Variant]:
        """Spark's pass-through first (no model, so one run), then events per request outer and
        mock latency inner: the order the runs go and the rows read."""
        floor = [Variant(0, 0)] if self.passthrough else []
        return floor + [
            Variant(rows, latency)
            for rows in self.rows_per_request
            for latency in self.mock_latencies_ms
        ]

    def events_for(self, variant: Variant) -> int:
        """The events preloaded for a variant's run: chat's are capped at CHAT_EVENTS_CAP."""
        if variant.route == "chat" and not variant.passthrough:
            return min(self.events, CHAT_EVENTS_CAP)
        return self.events


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/stream.py",
        description="Kafka -> Spark -> mock model -> Kafka: throughput and latency beside Kafka.",
    )
    parser.add_argument(
        "--events",
        type=int,
        help=f"events for the pipeline (400,000; quick 20,000); chat variants take at most "
        f"{CHAT_EVENTS_CAP:,}",
    )
    parser.add_argument(
        "--ceiling-events", type=int, help="events for Kafka's own ceiling (500,000; quick 100,000)"
    )
    parser.add_argument("--partitions", type=int, default=6, help="partitions per topic (6)")
    parser.add_argument(
        "--mock-latency-ms",
        default="0,20",
        help="the mock model's fixed latency, ms, comma-separated: one pipeline run each (0,20)",
    )
    parser.add_argument(
        "--rates",
        help="constant rates for latency, events/s, comma-separated (1000,10000,20000; quick "
        "500,2000); a variant that does not keep up at one rate skips the higher ones",
    )
    parser.add_argument("--duration", type=float, help="timed seconds per rate (20; quick 5)")
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds at each rate before the timed part, not timed (5; quick 2)",
    )
    parser.add_argument("--trigger-ms", type=int, default=500, help="the job's trigger (500)")
    parser.add_argument(
        "--max-offsets", type=int, default=25_000, help="maxOffsetsPerTrigger (25,000)"
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=256, help="model calls open per Python worker (256)"
    )
    parser.add_argument(
        "--rows-per-request",
        default="1,64",
        help="events per model request, comma-separated: one variant each, every mock latency "
        "within it; 1 calls chat once per event, above 1 calls completions with a list of "
        "prompts (1,64)",
    )
    parser.add_argument(
        "--no-passthrough",
        action="store_true",
        help="skip the run with the model taken out (Spark's own pass-through floor)",
    )
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting over the job's own (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="Markdown report")
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        help="keep the logs, checkpoints and Spark event logs here (default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        ceiling_events=args.ceiling_events or (100_000 if args.quick else 500_000),
        events=args.events or (20_000 if args.quick else 400_000),
        partitions=args.partitions,
        mock_latencies_ms=options.numbers(
            parser, "--mock-latency-ms", args.mock_latency_ms, minimum=0
        ),
        rates=options.numbers(
            parser,
            "--rates",
            args.rates or ("500,2000" if args.quick else "1000,10000,20000"),
            minimum=1,
        ),
        duration_s=args.duration or (5.0 if args.quick else 20.0),
        warmup_s=args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0),
        trigger_ms=args.trigger_ms,
        max_offsets=args.max_offsets,
        max_in_flight=args.max_in_flight,
        rows_per_request=options.numbers(
            parser, "--rows-per-request", args.rows_per_request, minimum=1
        ),
        out=args.out,
        workdir=args.workdir,
        spark_conf=dict(pair.split("=", 1) for pair in args.spark_conf),
        passthrough=not args.no_passthrough,
    )
    if min(settings.events, settings.ceiling_events, settings.partitions) < 1:
        parser.error("--events, --ceiling-events and --partitions must be at least 1")
    return settings
