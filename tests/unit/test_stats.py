"""Windowed stats: histograms, merging across replicas, and the summary status shows."""

from __future__ import annotations

import decimal
import random

from tiers.runtime.stats import histogram, window


def test_percentiles_of_a_histogram_are_close_to_the_exact_ones() -> None:
    rng = random.Random(1)
    samples = [rng.lognormvariate(3, 0.6) for _ in range(20000)]  # median about 20 ms
    counts = window.Counts()
    for sample in samples:
        counts.record(latency_ms=sample)
    ordered = sorted(samples)
    for quantile in (0.5, 0.95, 0.99):
        exact = ordered[int(quantile * len(ordered))]
        assert abs(histogram.percentile_ms(counts.latency, quantile) - exact) <= max(2, exact * 0.1)


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
