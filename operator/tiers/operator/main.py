"""Runs the operator: registers the handlers of all kinds and serves health and metrics."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from tiers.operator import batch_handlers, metrics, realtime_handlers, settings, stream_handlers

HANDLER_MODULES = (settings, realtime_handlers, stream_handlers, batch_handlers)


def run(
    *,
    namespaces: list[str],
    health_port: int = 8080,
    metrics_port: int = 9090,
    verbose: bool = False,
) -> None:
    """Blocks until the operator is stopped (SIGINT/SIGTERM). Watches all namespaces unless told."""
    kopf.configure(verbose=verbose)
    # One line per API request is noise at INFO; failures still surface as errors.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    metrics.serve(metrics_port)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", action="append", default=[], help="watch only these")
    parser.add_argument("--health-port", type=int, default=8080, help="liveness: /healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus: /metrics")
    parser.add_argument("--verbose", action="store_true")


def run_from_arguments(args: argparse.Namespace) -> None:
    run(
        namespaces=args.namespace,
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        verbose=args.verbose,
    )
