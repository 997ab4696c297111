"""CPU sampling for the stream benchmark: the CPU seconds each part of a pipeline used (the job's
JVM, its Python workers and driver, the mock, the broker and the bench itself)."""

from __future__ import annotations

import dataclasses
import os

import machine
import servers


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) each part used while the pipeline worked through the events."""

    jvm: float
    """The job's Spark JVM (driver and executor in one, `local[2]`)."""
    python_workers: float
    """Spark's Python daemon and workers (`mapInArrow`: parsing, model calls, records)."""
    driver: float
    """The job's own Python process (PySpark's driver side: it mostly waits)."""
    mock: float
    kafka: float
    bench: float

    def minus(self, earlier: Cpu) -> Cpu:
        return Cpu(
            *(
                now - then
                for now, then in zip(
                    dataclasses.astuple(self), dataclasses.astuple(earlier), strict=True
                )
            )
        )


def cpu_now(job: servers.Server, mock: servers.Server, broker: servers.Server) -> Cpu:
    """The CPU time so far of each part. The job is a process tree, not one process group:
    PySpark's daemon makes a group of its own for the workers it forks."""
    jvm = workers = driver = 0.0
    for pid, command, seconds in machine.process_tree(job.pid):
        if pid == job.pid:
            driver += seconds
        elif command == "java":
            jvm += seconds
        else:
            workers += seconds
    return Cpu(
        jvm=jvm,
        python_workers=workers,
        driver=driver,
        mock=servers.cpu_seconds(mock),
        kafka=servers.cpu_seconds(broker),
        bench=own_cpu(),
    )


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system
