"""The realtime benchmark's report: machine facts, throughput and added latency, as Markdown
whose columns line up, so that the same text reads well on a terminal and rendered."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys
from collections.abc import Sequence

from loadgen import Throughput
from paced import PacedLatency

NONE = "-"


@dataclasses.dataclass(frozen=True)
class ThroughputRow:
    scenario: str
    workers: int
    result: Throughput
    cpu_us_per_request: float
    """User + system CPU time of the server's own processes per answered request."""
    target_per_s: int | None = None
    """The design's floor for this row, in requests per second."""
    versus_litellm: bool = False


@dataclasses.dataclass(frozen=True)
class LatencyRow:
    scenario: str
    result: PacedLatency
    floor: PacedLatency
    """The mock backend alone at the same rate: what the row's latency is compared with."""
    target_added_p50_ms: float | None = None


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def publish(report: str, out: pathlib.Path) -> None:
    """Prints a finished report and writes it to `out` (bench/results/... by default)."""
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}", file=sys.stderr)


def facts(items: dict[str, str]) -> str:
    return "\n".join(f"- {name}: {value}" for name, value in items.items())


def throughput(rows: Sequence[ThroughputRow], litellm: Throughput | None) -> str:
    header = ["scenario", "workers", "req/s", "p50 ms", "p99 ms", "failed", "CPU µs/req"]
    header += ["vs target", "÷ LiteLLM"]
    body = [
        [
            row.scenario,
            str(row.workers),
            f"{row.result.requests_per_s:,.0f}",
            _ms(row.result.p50_ms),
            _ms(row.result.p99_ms),
            f"{row.result.failed:,}",
            f"{row.cpu_us_per_request:,.0f}",
            _versus_target(row.result.requests_per_s, row.target_per_s),
            _ratio(row.result.requests_per_s, litellm.requests_per_s)
            if row.versus_litellm and litellm is not None
            else NONE,
        ]
        for row in rows
    ]
    return markdown_table(header, body)


def added_latency(rows: Sequence[LatencyRow]) -> str:
    header = ["server", "rate", "answered/s", "p50 ms", "p99 ms", "added p50", "added p99"]
    header += ["failed", "skipped", "target"]
    body = []
    for row in rows:
        is_floor = row.result is row.floor
        added_p50 = row.result.p50_ms - row.floor.p50_ms
        body.append(
            [
                row.scenario,
                f"{row.result.rate_per_s:,}/s",
                f"{row.result.answered_per_s:,.0f}",
                _ms(row.result.p50_ms),
                _ms(row.result.p99_ms),
                NONE if is_floor else _signed_ms(added_p50),
                NONE if is_floor else _signed_ms(row.result.p99_ms - row.floor.p99_ms),
                f"{row.result.failed:,}",
                f"{row.result.skipped:,}",
                _added_target(added_p50, row.target_added_p50_ms),
            ]
        )
    return markdown_table(header, body)


def _ms(value: float) -> str:
    if math.isnan(value):
        return NONE
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _signed_ms(value: float) -> str:
    return NONE if math.isnan(value) else f"{value:+,.2f}"


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:,.1f}x" if baseline > 0 else NONE


def _versus_target(value: float, target: int | None) -> str:
    if target is None:
        return NONE
    verdict = "met" if value >= target else "not met"
    return f"{value / target:.2f}x of {target:,} ({verdict})"


def _added_target(added_p50_ms: float, target_ms: float | None) -> str:
    if target_ms is None:
        return NONE
    verdict = "met" if added_p50_ms <= target_ms else "not met"
    return f"≤ {target_ms:g} ms ({verdict})"
