"""Runs the operator: registers the handlers of all kinds, serves health and metrics, and
reconciles only while it holds the leader Lease (`leadership`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp.web
import kopf

from tiers.operator import (
    batch_handlers,
    leadership,
    metrics,
    realtime_handlers,
    settings,
    status_metrics,
    stream_handlers,
)

HANDLER_MODULES = (settings, realtime_handlers, stream_handlers, batch_handlers, status_metrics)


def run(
    *,
    namespaces: list[str],
    health_port: int = 8080,
    metrics_port: int = 9090,
    verbose: bool = False,
    election: leadership.Election | None = None,
) -> None:
    """Blocks until the operator is stopped (SIGINT/SIGTERM). Watches all namespaces unless told.
    With `election`, reconciles only while holding its Lease; exits 1 when the Lease is lost."""
    kopf.configure(verbose=verbose)
    # One line per API request is noise at INFO; failures still surface as errors.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    metrics.serve(metrics_port)

    async def operate(stop: asyncio.Event) -> None:
        await kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            settings=_scoped_settings(namespaces),
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
            stop_flag=stop,
        )

    if election is None:
        asyncio.run(operate(asyncio.Event()))
        return
    try:
        asyncio.run(_lead(election, operate, health_port=health_port))
    except leadership.LeadershipLost as error:
        logging.getLogger(__name__).error("%s: exiting so that the standby leads", error)
        raise SystemExit(1) from None


async def _lead(
    election: leadership.Election,
    operate: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    *,
    health_port: int,
) -> None:
    """Answers the liveness probe while standing by (a waiting replica is healthy), then hands
    the port to kopf's own probe once this process leads."""
    standby = await _serve_standby_health(health_port)

    async def lead(stop: asyncio.Event) -> None:
        await standby.cleanup()
        await operate(stop)

    try:
        await leadership.run_while_leading(election, lead)
    finally:
        await standby.cleanup()


async def _serve_standby_health(port: int) -> aiohttp.web.AppRunner:
    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"standby": True})

    app = aiohttp.web.Application()
    app.router.add_get("/healthz", healthz)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


def _scoped_settings(namespaces: list[str]) -> kopf.OperatorSettings:
    """kopf's settings before the startup handler (`settings.configure`) adds its own. Watching
    named namespaces, kopf neither lists namespaces nor watches CRDs (both cluster-wide reads):
    Roles in those namespaces are all the operator needs (chart value watchNamespaces)."""
    scoped = kopf.OperatorSettings()
    scoped.scanning.disabled = bool(namespaces)
    return scoped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", action="append", default=[], help="watch only these")
    parser.add_argument("--health-port", type=int, default=8080, help="liveness: /healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus: /metrics")
    parser.add_argument("--verbose", action="store_true")
    election = parser.add_argument_group("leader election (one active operator per cluster)")
    election.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="reconcile at once, without holding the Lease (a single local process)",
    )
    election.add_argument(
        "--lease-namespace",
        default=None,
        help="the Lease's namespace (default: $TIERS_OPERATOR_NAMESPACE, the pod's, or default)",
    )
    election.add_argument("--lease-name", default=leadership.LEASE_NAME)
    election.add_argument("--lease-duration", type=float, default=15.0, help="seconds")
    election.add_argument("--renew-deadline", type=float, default=10.0, help="seconds")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds")


def run_from_arguments(args: argparse.Namespace) -> None:
    election = None
    if args.leader_election:
        election = leadership.Election(
            namespace=args.lease_namespace or leadership.default_namespace(),
            name=args.lease_name,
            lease_duration_s=args.lease_duration,
            renew_deadline_s=args.renew_deadline,
            retry_period_s=args.retry_period,
        )
    run(
        namespaces=args.namespace,
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        verbose=args.verbose,
        election=election,
    )
