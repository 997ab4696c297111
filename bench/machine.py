"""What both benchmarks say about the machine they ran on, and how they stop cleanly."""

from __future__ import annotations

import contextlib
import os
import pathlib
import platform
import signal
import subprocess
from collections.abc import Iterator
from types import FrameType


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
