"""Latency histograms with fixed buckets: cheap to record, mergeable across replicas by adding
counts, and read back as percentiles whose error has a known bound.

Each bucket is at most `STEP_MS` wide or `RATIO` - 1 (4.4%) of its lower bound wide, whichever is
wider, up to `BOUNDS_MS[-1]` (17.5 minutes, above the longest upstream timeout). A percentile
read from them (interpolated within the bucket that holds its rank) lies in the same bucket as
the exact one, so it is off by at most that width, and by half a millisecond more once rounded:
|read - exact| <= max(STEP_MS, exact * (RATIO - 1)) + 0.5 ms (`error_bound_ms`).

Only the buckets a window touched are stored (`window.Counts.to_fields`): a gateway's cache hits
and misses touch a few dozen, not the 300 there are. These buckets are the status figures' only;
the gateway's Prometheus histogram keeps its own few coarse buckets (one series each).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

STEP_MS = 0.25
"""The narrowest bucket: finer than the whole milliseconds status shows."""
RATIO = 2 ** (1 / 16)
"""Sixteen buckets per doubling: each 4.4% wider than the one below."""
LAST_MS = 2.0**20
"""About 17.5 minutes; slower units fall in an open bucket, read as this bound."""


def _bounds() -> tuple[float, ...]:
    bounds = [STEP_MS]
    while bounds[-1] < LAST_MS:
        bounds.append(min(max(bounds[-1] + STEP_MS, bounds[-1] * RATIO), LAST_MS))
    return tuple(bounds)


BOUNDS_MS: tuple[float, ...] = _bounds()
"""Upper bounds in milliseconds; a last, open bucket holds everything slower."""

LEGACY_BOUNDS_MS: tuple[float, ...] = (
    0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100,
    125, 150, 200, 250, 300, 400, 500, 600, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000,
    5000, 7500, 10000, 15000, 20000, 30000, 60000,
)  # fmt: skip
"""The buckets stats were counted in before these (up to 50% wide above a second): what a
replica not yet upgraded still writes, and what the last hour of stored minutes holds."""


def bucket_of(latency_ms: float) -> int:
    """The index of the first bucket whose upper bound holds `latency_ms`."""
    return bisect.bisect_left(BOUNDS_MS, latency_ms)


def from_legacy(index: int) -> int:
    """The bucket that holds the upper bound of legacy bucket `index` (the open one: the bucket
    just above its last bound), so that old counts are read no faster than they were."""
    if index >= len(LEGACY_BOUNDS_MS):
        return bucket_of(LEGACY_BOUNDS_MS[-1]) + 1
    return bucket_of(LEGACY_BOUNDS_MS[max(index, 0)])


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
            if index >= len(BOUNDS_MS):
                break
            low = BOUNDS_MS[index - 1] if index > 0 else 0.0
            fraction = (rank - seen) / count
            return round(low + (BOUNDS_MS[index] - low) * fraction)
        seen += count
    return round(BOUNDS_MS[-1])


def error_bound_ms(exact_ms: float) -> float:
    """How far `percentile_ms` may be from the exact percentile `exact_ms`, up to `LAST_MS`
    (see the module)."""
    return max(STEP_MS, exact_ms * (RATIO - 1)) + 0.5
