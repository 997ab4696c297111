"""Windowed stats: histograms, merging across replicas, and the summary status shows."""

from __future__ import annotations

import decimal
import itertools
import math
import random

from tiers.runtime.stats import histogram, window


def _exact(samples: list[float], quantile: float) -> float:
    """The nearest-rank percentile: the sample at rank ceil(quantile * n)."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(quantile * len(ordered)), 1) - 1]


def _read(samples: list[float], quantile: float) -> int:
    counts = window.Counts()
    counts.record_many(samples)
    return histogram.percentile_ms(counts.latency, quantile)


def test_percentiles_of_a_histogram_are_within_the_error_bound_of_the_exact_ones() -> None:
    rng = random.Random(1)
    for mu in (0.0, 3.0, 6.0, 8.0, 10.0):  # medians from 1 ms to 22 s
        samples = [rng.lognormvariate(mu, 0.6) for _ in range(5000)]
        for quantile in (0.5, 0.95, 0.99):
            exact = _exact(samples, quantile)
            assert abs(_read(samples, quantile) - exact) <= histogram.error_bound_ms(exact)


def test_no_bucket_is_wider_than_a_quarter_ms_or_4_5_percent_of_its_lower_bound() -> None:
    bounds = histogram.BOUNDS_MS
    assert bounds[-1] >= 600_000, "up to the longest upstream timeout (spec ...timeoutMs)"
    for low, high in itertools.pairwise(bounds):
        assert high - low <= max(0.25, 0.045 * low) + 1e-9, (low, high)
    assert len(bounds) < 320, "a bounded number of Redis fields per window"


def test_the_worst_case_error_stays_within_the_bound_above_a_second_too() -> None:
    """Every sample on the low edge of its bucket, read at the top of that bucket's ranks (or
    on the high edge, read at the bottom): the farthest a read can be from the exact value."""
    worst = 0.0
    for index in range(1, len(histogram.BOUNDS_MS)):
        low, high = histogram.BOUNDS_MS[index - 1], histogram.BOUNDS_MS[index]
        for value, quantile in ((low * (1 + 1e-9), 0.99), (high, 0.01)):
            samples = [value] * 100
            error = abs(_read(samples, quantile) - value)
            assert error <= histogram.error_bound_ms(value), (index, value, quantile)
            if value >= 1000:
                worst = max(worst, error / value)
    assert worst <= 0.045, worst


def test_counts_in_the_legacy_buckets_are_read_at_their_upper_bound() -> None:
    """Stats written before the finer buckets (`lat:<index>`, e.g. by a gateway not yet
    upgraded) still count, no faster than they were."""
    legacy = {"units": 3, "lat:31": 1, "lat:32": 2}  # (750, 1000] ms, (1000, 1250] ms
    counts = window.Counts.from_fields(legacy)
    assert counts.latency.total() == 3
    assert 1250 <= histogram.percentile_ms(counts.latency, 1.0) <= 1250 * 1.045
    assert 1000 <= histogram.percentile_ms(counts.latency, 1 / 3) <= 1000 * 1.045
    beyond = window.Counts.from_fields({"units": 1, "lat:45": 1})  # the open bucket, > 60 s
    assert histogram.percentile_ms(beyond.latency, 0.5) > 60_000


def test_stored_fields_name_the_new_buckets_and_come_back_the_same() -> None:
    counts = window.Counts()
    counts.record_many([0.1, 1.2, 1234.5, 59_000, 2_000_000])
    fields = counts.to_fields()
    assert all(not name.startswith("lat:") for name in fields)
    assert window.Counts.from_fields(fields) == counts


def test_an_empty_histogram_reads_zero() -> None:
    assert histogram.percentile_ms({}, 0.99) == 0


def test_replicas_counts_add_up_through_the_stored_fields() -> None:
    a, b = window.Counts(), window.Counts()
    a.record(latency_ms=5, cache_hit=True, cost_usd=decimal.Decimal("0.000001"))
    b.record(
        latency_ms=50,
        cache_hit=False,
        tokens_in=10,
        tokens_out=5,
        cost_usd=decimal.Decimal("0.000150"),
    )
    b.record(latency_ms=500, error=True)
    merged = window.Counts.from_fields(a.to_fields())
    merged.add(window.Counts.from_fields(b.to_fields()))
    summary = window.summarize([merged], seconds=60)
    assert (summary.units, summary.errors) == (3, 1)
    assert summary.cache_hit_ratio == decimal.Decimal("0.5")
    assert summary.cost_usd == decimal.Decimal("0.000151")
    assert summary.cost_per_unit_usd == decimal.Decimal("0.000050333")
    assert (summary.tokens_in, summary.tokens_out) == (10, 5)
    assert summary.p50_ms <= 50 < summary.p99_ms


def test_a_micro_batch_recorded_at_once_equals_its_units_one_by_one() -> None:
    latencies = [3, 40, 40, 900, 12_000]
    one_by_one = window.Counts()
    for i, latency in enumerate(latencies):
        one_by_one.record(
            latency_ms=latency,
            error=i == 0,
            tokens_in=2,
            tokens_out=1,
            cost_usd=decimal.Decimal("0.000002"),
        )
    at_once = window.Counts()
    at_once.record_many(
        latencies, errors=1, tokens_in=10, tokens_out=5, cost_usd=decimal.Decimal("0.000010")
    )
    assert at_once == one_by_one


def test_a_window_without_cache_lookups_has_no_hit_ratio() -> None:
    counts = window.Counts()
    counts.record(latency_ms=1)
    assert window.summarize([counts], seconds=1).cache_hit_ratio is None
