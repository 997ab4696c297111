"""One active operator per cluster: a coordination.k8s.io Lease decides which process reconciles.

kopf has no leader election (its peering needs CRDs of its own and only pauses), so `main` starts
kopf only once this process holds the Lease, as controller-runtime's manager does: a standby
replica waits, retrying every `retry_period_s`, and takes over once the holder has not renewed
for `lease_duration_s`. Expiry is judged by when *this* process last saw the Lease change (the
monotonic clock), never by comparing its timestamps with the local clock, so skewed clocks do
not matter. A leader that cannot renew within `renew_deadline_s` stops reconciling at once and
exits: by then a standby may lead. A leader that stops cleanly gives the Lease up, so the
standby takes over without waiting for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import pathlib
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import lightkube
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from tiers.operator import kube

log = logging.getLogger(__name__)

LEASE_NAME = "tiers-operator"
_SERVICE_ACCOUNT_NAMESPACE = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeadershipLost(Exception):
    """The Lease could not be renewed in time: another replica may lead now."""


@dataclasses.dataclass(frozen=True)
class Election:
    namespace: str
    name: str = LEASE_NAME
    identity: str = dataclasses.field(
        default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    )
    # controller-runtime's defaults.
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


def default_namespace() -> str:
    """Where the Lease lives: the operator's own namespace (the chart sets it; in a pod the
    service account says it), else `default` for a local run."""
    named = os.environ.get("TIERS_OPERATOR_NAMESPACE")
    if named:
        return named
    if _SERVICE_ACCOUNT_NAMESPACE.exists():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


@dataclasses.dataclass
class _Observed:
    """The Lease as this process last saw it change, and when (monotonic seconds)."""

    record: tuple[str | None, str | None] | None = None  # (holder, renewTime)
    at: float = 0.0


class Elector:
    """Acquires and renews one Lease for one identity."""

    def __init__(self, election: Election, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.election = election
        self.clock = clock
        self.observed = _Observed()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this identity holds the Lease afterwards."""
        election = self.election
        client = kube.client()
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = await client.get(Lease, election.name, namespace=election.namespace)
        except lightkube.ApiError as error:
            if error.status.code != 404:
                raise
            return await self._create(now)
        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity or None
        record = (holder, spec.renewTime.isoformat() if spec.renewTime else None)
        if record != self.observed.record:
            self.observed = _Observed(record, self.clock())
        duration = spec.leaseDurationSeconds or election.lease_duration_s
        held_by_other = holder is not None and holder != election.identity
        if held_by_other and self.clock() < self.observed.at + duration:
            return False
        if holder != election.identity:
            spec.acquireTime = now
            spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
        spec.holderIdentity = election.identity
        spec.leaseDurationSeconds = int(election.lease_duration_s)
        spec.renewTime = now
        lease.spec = spec
        try:
            # A replace carries the resourceVersion read: of two racing replicas, one gets 409.
            await client.replace(lease)
        except lightkube.ApiError as error:
            if error.status.code == 409:
                return False
            raise
        self.observed = _Observed((election.identity, now.isoformat()), self.clock())
        return True

    async def _create(self, now: datetime.datetime) -> bool:
        election = self.election
        lease = Lease(
            metadata=ObjectMeta(name=election.name, namespace=election.namespace),
            spec=LeaseSpec(
                holderIdentity=election.identity,
                leaseDurationSeconds=int(election.lease_duration_s),
                acquireTime=now,
                renewTime=now,
                leaseTransitions=0,
            ),
        )
        try:
            await kube.client().create(lease)
        except lightkube.ApiError as error:
            if error.status.code == 409:
                return False
            raise
        self.observed = _Observed((election.identity, now.isoformat()), self.clock())
        return True

    async def acquire(self) -> None:
        """Returns once this identity holds the Lease."""
        logged = False
        while not await self._attempt():
            if not logged:
                log.info(
                    "waiting for Lease %s/%s: another operator leads",
                    self.election.namespace,
                    self.election.name,
                )
                logged = True
            await asyncio.sleep(self.election.retry_period_s)
        log.info(
            "leading as %s (Lease %s/%s)",
            self.election.identity,
            self.election.namespace,
            self.election.name,
        )

    async def keep(self) -> None:
        """Renews every retry period; returns when a renewal has not succeeded for the renew
        deadline (leadership lost)."""
        last = self.clock()
        while self.clock() - last < self.election.renew_deadline_s:
            await asyncio.sleep(self.election.retry_period_s)
            if await self._attempt():
                last = self.clock()

    async def release(self) -> None:
        """Gives the Lease up (holder cleared), so a standby need not wait for it to expire."""
        client = kube.client()
        try:
            lease = await client.get(Lease, self.election.name, namespace=self.election.namespace)
            if lease.spec is None or lease.spec.holderIdentity != self.election.identity:
                return
            lease.spec.holderIdentity = None
            lease.spec.leaseDurationSeconds = 1
            await client.replace(lease)
        except lightkube.ApiError as error:
            log.warning("could not release the Lease: %s", error.status.message)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (lightkube.ApiError, OSError) as error:
            log.warning("Lease %s: %s", self.election.name, error)
            return False


async def run_while_leading(
    election: Election, operate: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> None:
    """Waits for the Lease, then runs `operate(stop)` while renewing it. When renewal fails,
    sets `stop`, waits briefly for it to end and raises `LeadershipLost`."""
    elector = Elector(election)
    await elector.acquire()
    stop = asyncio.Event()
    operating = asyncio.create_task(operate(stop))
    keeping = asyncio.create_task(elector.keep())
    try:
        done, _ = await asyncio.wait({operating, keeping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not keeping.done():
            keeping.cancel()
    if keeping in done:
        log.error("lost Lease %s/%s: stopping", election.namespace, election.name)
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(operating, timeout=election.renew_deadline_s)
        raise LeadershipLost(f"Lease {election.namespace}/{election.name} was not renewed")
    await elector.release()
    operating.result()
