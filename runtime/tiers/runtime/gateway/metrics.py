"""Prometheus metrics of one gateway process (the endpoint is a constant label of the process)."""

from __future__ import annotations

import functools

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry()

REQUESTS = prometheus_client.Counter(
    "tiers_gateway_requests_total",
    "Requests answered, by route, status code and cache outcome.",
    ["route", "status", "cache"],
    registry=REGISTRY,
)
LATENCY = prometheus_client.Histogram(
    "tiers_gateway_request_seconds",
    "Time from request to the last byte of the response, by route and cache outcome.",
    ["route", "cache"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
TOKENS = prometheus_client.Counter(
    "tiers_gateway_tokens_total",
    "Tokens billed by backends, by kind (prompt, cached, completion, reasoning).",
    ["kind"],
    registry=REGISTRY,
)
COST = prometheus_client.Counter(
    "tiers_gateway_cost_usd_total", "Spend on backends in US dollars.", registry=REGISTRY
)
UPSTREAM_ATTEMPTS = prometheus_client.Counter(
    "tiers_gateway_upstream_attempts_total",
    "Calls made to backends, retries included.",
    registry=REGISTRY,
)
SPANS = prometheus_client.Counter(
    "tiers_gateway_spans_total",
    "Trace spans by what became of them: exported, dropped (the export queue was full) or"
    " failed (the collector did not take them).",
    ["outcome"],
    registry=REGISTRY,
)


def count_spans(outcome: str, count: int) -> None:
    SPANS.labels(outcome).inc(count)


SEMANTIC_LOOKUPS = prometheus_client.Counter(
    "tiers_gateway_semantic_lookups_total",
    "Single-turn prompts looked up in the semantic cache after an exact miss, by outcome: "
    "hit, miss, bypass (Redis unreachable) or error (the embedding call failed).",
    ["outcome"],
    registry=REGISTRY,
)


# Label lookups take a lock and build a tuple each time; the combinations are few, so keep them.
@functools.lru_cache(maxsize=512)
def requests_counter(route: str, status: int, cache: str) -> prometheus_client.Counter:
    return REQUESTS.labels(route, str(status), cache)


@functools.lru_cache(maxsize=64)
def latency_histogram(route: str, cache: str) -> prometheus_client.Histogram:
    return LATENCY.labels(route, cache)


@functools.lru_cache(maxsize=8)
def semantic_lookups(outcome: str) -> prometheus_client.Counter:
    return SEMANTIC_LOOKUPS.labels(outcome)


def exposition() -> bytes:
    return prometheus_client.generate_latest(REGISTRY)
