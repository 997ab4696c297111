"""Progress for long work: one line per step, with elapsed time and, where known, a count.

On a terminal the current line is redrawn in place; elsewhere (CI, logs) a line is printed when a
step starts, every 20 s while it runs and when it ends, so a log shows that work goes on.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

_HEARTBEAT_S = 20.0


class Step:
    """One step in progress: `advance()` moves its counter, `note()` changes its detail text."""

    def __init__(self, title: str, *, total: int | None, stream: TextIO) -> None:
        self.title = title
        self.total = total
        self.done = 0
        self.detail = ""
        self.started = time.monotonic()
        self._stream = stream
        self._tty = stream.isatty()
        self._lock = threading.Lock()
        self._last_print = 0.0

    def advance(self, count: int = 1, detail: str = "") -> None:
        with self._lock:
            self.done += count
            self.detail = detail
        self._maybe_print()

    def note(self, detail: str) -> None:
        with self._lock:
            self.detail = detail
        self._maybe_print()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        count = ""
        if self.total:
            count = f" [{min(self.done, self.total)}/{self.total} {100 * self.done // self.total}%]"
        detail = f" {self.detail}" if self.detail else ""
        return f"  … {self.title}{count} {elapsed:5.1f}s{detail}"

    def _maybe_print(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            if force or now - self._last_print > 0.1:
                self._last_print = now
                self._stream.write("\r\033[K" + self.line()[:200])
                self._stream.flush()
        elif force or now - self._last_print > _HEARTBEAT_S:
            self._last_print = now
            self._stream.write(self.line() + "\n")
            self._stream.flush()


@contextlib.contextmanager
def step(title: str, *, total: int | None = None, stream: TextIO | None = None) -> Iterator[Step]:
    """Runs a block as a named step; prints ✓ with its duration, or ✗ and re-raises."""
    out = stream or sys.stderr
    current = Step(title, total=total, stream=out)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(1.0):
            current._maybe_print()

    ticker = threading.Thread(target=heartbeat, daemon=True)
    current._maybe_print(force=True)
    ticker.start()
    try:
        yield current
    except BaseException:
        stop.set()
        ticker.join()
        _finish(out, "✗", current)
        raise
    stop.set()
    ticker.join()
    _finish(out, "✓", current)


def _finish(out: TextIO, mark: str, current: Step) -> None:
    prefix = "\r\033[K" if out.isatty() else ""
    out.write(f"{prefix}  {mark} {current.title} ({time.monotonic() - current.started:.1f}s)\n")
    out.flush()
