"""Latency histograms with fixed, log-spaced buckets: cheap to record, mergeable across
replicas by adding counts, and precise enough for whole-millisecond percentiles."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

# Upper bounds in milliseconds; a last, open bucket holds everything slower.
BOUNDS_MS: tuple[float, ...] = (
    0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100,
    125, 150, 200, 250, 300, 400, 500, 600, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000,
    5000, 7500, 10000, 15000, 20000, 30000, 60000,
)  # fmt: skip


def bucket_of(latency_ms: float) -> int:
    """The index of the first bucket whose upper bound holds `latency_ms`."""
    return bisect.bisect_left(BOUNDS_MS, latency_ms)


def percentile_ms(counts: Mapping[int, int], quantile: float) -> int:
    """The `quantile` (0..1) of a histogram, interpolated within its bucket, in whole ms."""
    total = sum(counts.values())
    if total == 0:
        return 0
    rank = quantile * total
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if seen + count >= rank and count > 0:
            low = BOUNDS_MS[index - 1] if index > 0 else 0.0
            high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * 2
            fraction = (rank - seen) / count
            return round(low + (high - low) * fraction)
        seen += count
    return round(BOUNDS_MS[-1])
