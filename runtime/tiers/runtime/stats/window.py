"""A window of stats: counts that add up across replicas and minutes, and their summary.

The same format serves the three tiers: a gateway request, a stream event and a batch record
each count as one unit.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections import Counter
from collections.abc import Iterable

from tiers.runtime.stats import histogram

NANO = decimal.Decimal("0.000000001")
LATENCY_FIELD = "lat2:"
"""The prefix of a latency bucket's field, followed by its index in `histogram.BOUNDS_MS`. Stats
stored in the legacy buckets (`histogram.LEGACY_BOUNDS_MS`) are "lat:<index>": still read, so
that a window spanning an upgrade (or a replica not yet upgraded) keeps its latency."""
_LEGACY_LATENCY_FIELD = "lat:"


@dataclasses.dataclass
class Counts:
    """Mutable counters of one replica between two flushes, or of a merged window."""

    units: int = 0
    errors: int = 0
    cache_lookups: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_nano_usd: int = 0
    latency: Counter[int] = dataclasses.field(default_factory=Counter)

    def record(
        self,
        *,
        latency_ms: float,
        error: bool = False,
        cache_hit: bool | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: decimal.Decimal = decimal.Decimal(0),
    ) -> None:
        self.units += 1
        self.errors += int(error)
        if cache_hit is not None:
            self.cache_lookups += 1
            self.cache_hits += int(cache_hit)
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        if cost_usd:
            self.cost_nano_usd += int(cost_usd / NANO)
        self.latency[histogram.bucket_of(latency_ms)] += 1

    def record_many(
        self,
        latencies_ms: Iterable[float],
        *,
        errors: int = 0,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: decimal.Decimal = decimal.Decimal(0),
    ) -> None:
        """A micro-batch's units at once: the totals `record` would reach one unit at a time."""
        buckets = Counter(map(histogram.bucket_of, latencies_ms))
        self.units += buckets.total()
        self.errors += errors
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        if cost_usd:
            self.cost_nano_usd += int(cost_usd / NANO)
        self.latency.update(buckets)

    def add(self, other: Counts) -> None:
        for field in ("units", "errors", "cache_lookups", "cache_hits", "tokens_in", "tokens_out",
                      "cost_nano_usd"):  # fmt: skip
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.latency.update(other.latency)

    def to_fields(self) -> dict[str, int]:
        """Flat integer fields, as stored in a Redis hash (HINCRBY-able)."""
        fields = {
            "units": self.units,
            "errors": self.errors,
            "cache_lookups": self.cache_lookups,
            "cache_hits": self.cache_hits,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_nano_usd": self.cost_nano_usd,
        }
        fields.update({f"{LATENCY_FIELD}{index}": count for index, count in self.latency.items()})
        return {name: value for name, value in fields.items() if value}

    @classmethod
    def from_fields(cls, fields: dict[str, int]) -> Counts:
        counts = cls()
        for name, value in fields.items():
            if name.startswith(LATENCY_FIELD):
                counts.latency[int(name[len(LATENCY_FIELD) :])] += value
            elif name.startswith(_LEGACY_LATENCY_FIELD):
                index = int(name[len(_LEGACY_LATENCY_FIELD) :])
                counts.latency[histogram.from_legacy(index)] += value
            elif hasattr(counts, name) and name != "latency":
                setattr(counts, name, value)
        return counts

    def __bool__(self) -> bool:
        return self.units > 0


@dataclasses.dataclass(frozen=True)
class Summary:
    """What status shows of one window."""

    units: int
    units_per_second: int
    errors: int
    p50_ms: int
    p95_ms: int
    p99_ms: int
    cache_hit_ratio: decimal.Decimal | None
    tokens_in: int
    tokens_out: int
    cost_usd: decimal.Decimal
    cost_per_unit_usd: decimal.Decimal


def summarize(windows: Iterable[Counts], *, seconds: float) -> Summary:
    total = Counts()
    for counts in windows:
        total.add(counts)
    cost = (decimal.Decimal(total.cost_nano_usd) * NANO).quantize(NANO)
    ratio = None
    if total.cache_lookups:
        ratio = (decimal.Decimal(total.cache_hits) / total.cache_lookups).quantize(
            decimal.Decimal("0.0001")
        )
    return Summary(
        units=total.units,
        units_per_second=round(total.units / seconds) if seconds > 0 else 0,
        errors=total.errors,
        p50_ms=histogram.percentile_ms(total.latency, 0.50),
        p95_ms=histogram.percentile_ms(total.latency, 0.95),
        p99_ms=histogram.percentile_ms(total.latency, 0.99),
        cache_hit_ratio=ratio,
        tokens_in=total.tokens_in,
        tokens_out=total.tokens_out,
        cost_usd=cost,
        cost_per_unit_usd=(cost / total.units).quantize(NANO)
        if total.units
        else decimal.Decimal(0),
    )
