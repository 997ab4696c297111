"""What the benchmarks say about the machine they ran on and the CPU their processes used, their
progress lines, and how they stop cleanly."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import FrameType


def common_facts() -> dict[str, str]:
    """The facts every benchmark's report starts with: when, on what, under how much load."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "load average before the run": load_average(),
        "python": platform.python_version(),
    }


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def first_line(argv: list[str], *, stderr: bool = False) -> str:
    """The first line a version command prints (on stderr for tools such as java)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    output = done.stderr if stderr else done.stdout
    return output.splitlines()[0] if output else "unknown"


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def process_tree(root: int) -> list[tuple[int, str, float]]:
    """(pid, command, CPU seconds) of `root` and its descendants; a process's CPU includes
    that of the children it has reaped (PySpark's daemon reaps its finished workers).

    Linux only: it reads /proc. A Spark job is a process tree, not one process group: PySpark's
    daemon makes a group of its own for the workers it forks."""
    parents: dict[int, int] = {}
    found: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name_end = text.rfind(")")
        command = text[text.find("(") + 1 : name_end]
        # After the name: state, ppid, ..., utime (12th), stime, cutime, cstime.
        fields = text[name_end + 1 :].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        found[pid] = (command, sum(int(value) for value in fields[11:15]) / tick)
    tree, frontier = set(), {root}
    while frontier:
        tree |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
    return [(pid, *found[pid]) for pid in sorted(tree) if pid in found]


class Clock:
    """Progress lines on stderr, each with the seconds since the bench began."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM ends the run the way Ctrl-C does: through every `finally`, stopping processes."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
