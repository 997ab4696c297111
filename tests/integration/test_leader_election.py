"""Two operator processes against the local control plane: one leads (holds the Lease and
reconciles), the other waits; when the leader is killed, the standby takes over within the lease
duration and reconciles; a leader that stops cleanly gives the Lease up."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Kubectl, wait_for

from tiers import devenv
from tiers.devenv import processes

LEASE = "tiers-operator-test"
LEASE_DURATION_S = 4.0
RETRY_PERIOD_S = 0.5
RECONCILING = "kopf.objects"
"""The logger of kopf's per-object lines: only a replica that reconciles writes them. The
session's operator, where it runs, reconciles this namespace's objects too (it watches them
all), so what a replica did is read from its own log, never from the objects' status."""


class Replica:
    def __init__(self, started: processes.Started) -> None:
        self.started = started

    def log(self) -> str:
        return self.started.log.read_text(errors="replace")


@pytest.fixture
def replicas(
    dev_cluster: devenv.DevCluster, crds: None, namespace: str, tmp_path: pathlib.Path
) -> Iterator[Any]:
    started: list[processes.Started] = []

    def start(name: str) -> Replica:
        process = processes.start(
            name,
            [
                sys.executable, "-m", "tiers.operator",
                "--health-port", str(processes.free_port()),
                "--metrics-port", str(processes.free_port()),
                "--namespace", namespace,
                "--lease-namespace", namespace, "--lease-name", LEASE,
                "--lease-duration", str(LEASE_DURATION_S), "--renew-deadline", "3",
                "--retry-period", str(RETRY_PERIOD_S),
            ],
            log_dir=tmp_path,
            env={**os.environ, **dev_cluster.env(), "TIERS_RECHECK_SECONDS": "3"},
        )  # fmt: skip
        started.append(process)
        return Replica(process)

    yield start
    for process in started:
        processes.stop(process.pid, grace_s=5)


def lease(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    found = kubectl.run("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout).get("spec", {}) if found.returncode == 0 else {}


def holder(kubectl: Kubectl, namespace: str) -> str | None:
    return lease(kubectl, namespace).get("holderIdentity") or None


def endpoint(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "tiers.dev/v1alpha1",
            "kind": "RealtimeEndpoint",
            "metadata": {"name": name},
            "spec": {
                "model": "gpt-4o-mini",
                "backends": [
                    {
                        "name": "primary",
                        "provider": "openai-compatible",
                        "baseURL": "http://127.0.0.1:9/v1",
                        "model": "gpt-4o-mini",
                    }
                ],
                "cache": {"enabled": False},
            },
        }
    )


def reconciled(kubectl: Kubectl, namespace: str, name: str) -> bool:
    return bool(kubectl.get("rte", name, "-n", namespace).get("status", {}).get("conditions"))


def test_one_replica_leads_and_the_standby_takes_over_when_it_is_killed(
    kubectl: Kubectl, namespace: str, replicas: Any
) -> None:
    first = replicas("operator-a")
    leader = wait_for(lambda: holder(kubectl, namespace), timeout_s=60, what="a Lease holder")
    second = replicas("operator-b")
    wait_for(lambda: "waiting for Lease" in second.log(), timeout_s=60, what="the standby to wait")

    kubectl.apply(endpoint("before"), namespace=namespace)
    wait_for(
        lambda: RECONCILING in first.log() and reconciled(kubectl, namespace, "before"),
        timeout_s=60, what="the leader's reconcile",
    )  # fmt: skip
    assert holder(kubectl, namespace) == leader
    assert RECONCILING not in second.log(), "the standby reconciled while not leading"

    killed = datetime.datetime.now(datetime.UTC)
    os.killpg(first.started.pid, signal.SIGKILL)
    taken = wait_for(
        lambda: (found := lease(kubectl, namespace)).get("holderIdentity") not in (None, leader)
        and found,
        timeout_s=30,
        what="the standby to take the Lease",
    )  # fmt: skip
    # When the standby took it, as it wrote it (not when this test's polling saw it): within the
    # lease duration (counted from the last renewal, before the kill) and a retry.
    acquired = datetime.datetime.fromisoformat(taken["acquireTime"].replace("Z", "+00:00"))
    took_over_s = (acquired - killed).total_seconds()
    assert took_over_s <= LEASE_DURATION_S + 2 * RETRY_PERIOD_S + 1.0, (took_over_s, taken)
    wait_for(
        lambda: f"leading as {taken['holderIdentity']}" in second.log(),
        timeout_s=10, what="the standby to say it leads",
    )  # fmt: skip

    kubectl.apply(endpoint("after"), namespace=namespace)
    wait_for(
        lambda: RECONCILING in second.log() and reconciled(kubectl, namespace, "after"),
        timeout_s=60, what="the new leader's reconcile",
    )  # fmt: skip

    # A clean stop gives the Lease up at once: no one holds it, nobody waits for it to expire.
    processes.stop(second.started.pid, grace_s=10)
    assert holder(kubectl, namespace) is None
