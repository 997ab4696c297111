"""Prometheus metrics of the operator: reconciles, errors and durations, by kind."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import prometheus_client

RECONCILES = prometheus_client.Counter(
    "tiers_reconciles_total", "Reconciles run, by kind and outcome.", ["kind", "outcome"]
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "tiers_reconcile_errors_total",
    "Reconciles that raised, by kind and exception.",
    ["kind", "error"],
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "tiers_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@contextlib.contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Counts and times one reconcile of `kind`; an exception counts as an error and propagates."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        RECONCILES.labels(kind, "error").inc()
        RECONCILE_ERRORS.labels(kind, type(error).__name__).inc()
        raise
    else:
        RECONCILES.labels(kind, "success").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)


def serve(port: int) -> None:
    """Serves /metrics on 0.0.0.0:`port` from a background thread."""
    prometheus_client.start_http_server(port)
