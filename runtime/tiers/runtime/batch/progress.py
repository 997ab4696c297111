"""How far a batch run is: counted by the job's driver, shown on its terminal, published to Redis
for the operator, and read back into the BatchJob's status.

This module is the contract between the job (which writes `tiers:batch:<job>:<run>`, a hash) and
the operator (which reads it): the field names and their meaning live only here.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
from collections.abc import Mapping
from typing import Literal

from tiers.runtime import pricing
from tiers.runtime.stats import window

State = Literal[
    "Estimating", "Running", "Succeeded", "Failed", "OverBudget", "BudgetSpent", "Estimated"
]
KEEP_SECONDS = 7 * 24 * 3600
PUBLISH_INTERVAL_S = 2.0
"""How often a running job publishes its progress unless its config says otherwise
(`progress_interval_ms`); each hash says the interval it was published at (`interval_s`)."""
STALE_AFTER_INTERVALS = 15
"""A running run whose progress has not come for this many of its own intervals shows its last
figures as stale (the job or its way to Redis is stuck): measured in intervals, so a job that
publishes less often is not taken for a stuck one."""
NANO = decimal.Decimal("0.000000001")


def key(job: str, run: str) -> str:
    return f"tiers:batch:{job}:{run}"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What a run will take, before it starts: measured on a sample, scaled to the input."""

    records: int
    input_tokens: int
    output_tokens: int
    """An upper bound: every record's reply at the model call's max_tokens."""
    cost_usd: decimal.Decimal
    duration_seconds: int
    tokens_exact: bool
    """Whether prompt tokens were counted with the model's tokenizer or approximated."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """One attempt of a run, as its driver sees it; `done` and `cost_usd` include what earlier
    attempts of the same run already scored (`skipped`)."""

    state: State
    attempt: int
    total: int | None
    skipped: int
    done: int
    failed: int
    tokens_in: int
    tokens_out: int
    cost_usd: decimal.Decimal
    skipped_cost_usd: decimal.Decimal
    """What the skipped records cost when an earlier attempt scored them."""
    started_s: float
    updated_s: float
    estimate: Estimate | None = None
    message: str = ""
    interval_s: float = PUBLISH_INTERVAL_S
    """How often the job publishes this while it runs."""

    @classmethod
    def starting(
        cls, *, state: State, attempt: int, total: int | None, skipped: int,
        skipped_cost_usd: decimal.Decimal, now_s: float, estimate: Estimate | None = None,
        interval_s: float = PUBLISH_INTERVAL_S,
    ) -> Progress:  # fmt: skip
        return cls(
            state=state, attempt=attempt, total=total, skipped=skipped, done=skipped, failed=0,
            tokens_in=0, tokens_out=0, cost_usd=skipped_cost_usd,
            skipped_cost_usd=skipped_cost_usd, started_s=now_s, updated_s=now_s, estimate=estimate,
            interval_s=interval_s,
        )  # fmt: skip

    def counted(self, counts: window.Counts, *, now_s: float) -> Progress:
        """This attempt's counts so far (totals, not increments) on top of the start."""
        return dataclasses.replace(
            self,
            done=self.skipped + counts.units - counts.errors,
            failed=counts.errors,
            tokens_in=counts.tokens_in,
            tokens_out=counts.tokens_out,
            cost_usd=self.skipped_cost_usd + decimal.Decimal(counts.cost_nano_usd) * NANO,
            updated_s=now_s,
        )

    @property
    def scored(self) -> int:
        """Records this attempt has finished, good or failed."""
        return self.done - self.skipped + self.failed

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None if self.total is None else 100
        return min(100, (self.done + self.failed) * 100 // self.total)

    @property
    def elapsed_s(self) -> float:
        return max(self.updated_s - self.started_s, 0.0)

    @property
    def records_per_second(self) -> int:
        return round(self.scored / self.elapsed_s) if self.elapsed_s > 0 else 0

    @property
    def eta_seconds(self) -> int | None:
        if self.total is None or self.scored == 0 or self.elapsed_s <= 0:
            return None
        remaining = max(self.total - self.done - self.failed, 0)
        return round(remaining * self.elapsed_s / self.scored)

    @property
    def per_record_usd(self) -> decimal.Decimal:
        return (self.cost_usd / self.done).quantize(NANO) if self.done else decimal.Decimal(0)

    @property
    def stale_after_s(self) -> float:
        """How long without a newer publish before these figures are stale, were the run going."""
        return STALE_AFTER_INTERVALS * self.interval_s


def render_line(progress: Progress, *, width: int = 24) -> str:
    """One terminal line: a bar, counts of total, records/s, cost so far and the ETA."""
    percent = progress.percent
    filled = 0 if percent is None else width * percent // 100
    bar = "#" * filled + "." * (width - filled)
    total = "?" if progress.total is None else f"{progress.total:,}"
    eta = progress.eta_seconds
    parts = [
        f"[{bar}] {'' if percent is None else f'{percent:3d}%'}",
        f"{progress.done:,}/{total} done",
        f"{progress.failed:,} failed",
        f"{progress.records_per_second:,} rec/s",
        f"${pricing.format_usd(progress.cost_usd)}",
        f"ETA {_clock(eta)}" if eta is not None else "ETA -",
    ]
    return "  ".join(parts)


def _clock(seconds: int) -> str:
    return str(datetime.timedelta(seconds=seconds))


def to_fields(progress: Progress) -> dict[str, str]:
    """The Redis hash of a run's progress (strings, as Redis stores them)."""
    fields = {
        "state": progress.state,
        "attempt": str(progress.attempt),
        "skipped": str(progress.skipped),
        "done": str(progress.done),
        "failed": str(progress.failed),
        "tokens_in": str(progress.tokens_in),
        "tokens_out": str(progress.tokens_out),
        "cost_usd": pricing.format_usd(progress.cost_usd),
        "skipped_cost_usd": pricing.format_usd(progress.skipped_cost_usd),
        "started_s": f"{progress.started_s:.3f}",
        "updated_s": f"{progress.updated_s:.3f}",
        "interval_s": f"{progress.interval_s:.3f}",
        "message": progress.message,
    }
    if progress.total is not None:
        fields["total"] = str(progress.total)
    estimate = progress.estimate
    if estimate is not None:
        fields.update(
            {
                "estimate_records": str(estimate.records),
                "estimate_input_tokens": str(estimate.input_tokens),
                "estimate_output_tokens": str(estimate.output_tokens),
                "estimate_cost_usd": pricing.format_usd(estimate.cost_usd),
                "estimate_duration_seconds": str(estimate.duration_seconds),
                "estimate_tokens_exact": "1" if estimate.tokens_exact else "0",
            }
        )
    return fields


def from_fields(fields: Mapping[str, str]) -> Progress:
    """The inverse of `to_fields`; KeyError or ValueError for a hash that is not one."""
    estimate = None
    if "estimate_records" in fields:
        estimate = Estimate(
            records=int(fields["estimate_records"]),
            input_tokens=int(fields["estimate_input_tokens"]),
            output_tokens=int(fields["estimate_output_tokens"]),
            cost_usd=decimal.Decimal(fields["estimate_cost_usd"]),
            duration_seconds=int(fields["estimate_duration_seconds"]),
            tokens_exact=fields.get("estimate_tokens_exact") == "1",
        )
    state = fields["state"]
    if state not in _STATES:
        raise ValueError(f"unknown batch state {state!r}")
    return Progress(
        state=state,  # type: ignore[arg-type]
        attempt=int(fields["attempt"]),
        total=int(fields["total"]) if "total" in fields else None,
        skipped=int(fields["skipped"]),
        done=int(fields["done"]),
        failed=int(fields["failed"]),
        tokens_in=int(fields["tokens_in"]),
        tokens_out=int(fields["tokens_out"]),
        cost_usd=decimal.Decimal(fields["cost_usd"]),
        skipped_cost_usd=decimal.Decimal(fields.get("skipped_cost_usd", "0")),
        started_s=float(fields["started_s"]),
        updated_s=float(fields["updated_s"]),
        estimate=estimate,
        message=fields.get("message", ""),
        # A job from before `interval_s` was published published at the default.
        interval_s=float(fields.get("interval_s", PUBLISH_INTERVAL_S)),
    )


def summary(final: Progress, *, output_uri: str) -> dict[str, object]:
    """The last line the job prints (JSON): where a run's numbers are read when its progress
    hash cannot be (a Databricks run's output, when its cluster cannot reach the stats Redis)."""
    return {
        "state": final.state,
        "attempt": final.attempt,
        "records": final.total,
        "done": final.done,
        "failed": final.failed,
        "skipped": final.skipped,
        "costUSD": pricing.format_usd(final.cost_usd),
        "durationSeconds": round(final.elapsed_s, 3),
        "outputURI": output_uri,
        "message": final.message,
    }


def from_summary(output: str) -> Progress | None:
    """The run's final numbers from its output's last summary line; None without one. Tokens
    are not in a summary (status shows none)."""
    for line in reversed(output.strip().splitlines()):
        try:
            found = json.loads(line)
            if not isinstance(found, dict) or found.get("state") not in _STATES:
                continue
            return Progress(
                state=found["state"], attempt=int(found["attempt"]),
                total=None if found.get("records") is None else int(found["records"]),
                skipped=int(found["skipped"]), done=int(found["done"]),
                failed=int(found["failed"]), tokens_in=0, tokens_out=0,
                cost_usd=decimal.Decimal(str(found["costUSD"])),
                skipped_cost_usd=decimal.Decimal(0), started_s=0.0,
                updated_s=float(found.get("durationSeconds") or 0.0),
                message=str(found.get("message") or ""),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, decimal.InvalidOperation):
            continue
    return None


_STATES = frozenset(State.__args__)  # type: ignore[attr-defined]

EXIT_CODES: Mapping[str, int] = {"Failed": 1, "OverBudget": 3, "BudgetSpent": 4}
"""How the job's process ends when a run does not succeed, so that a Kubernetes Job's pod
failure policy can tell a budget (never retried) from a failure (retried)."""
