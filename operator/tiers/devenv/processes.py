"""Background processes of the dev environment: start with a log file, wait until ready, stop."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Started:
    name: str
    pid: int
    log: pathlib.Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    name: str,
    command: Sequence[str | os.PathLike[str]],
    *,
    log_dir: pathlib.Path,
    cwd: pathlib.Path | None = None,
    env: dict[str, str] | None = None,
) -> Started:
    """Starts a process in its own session (so it outlives `tiers dev up`), output to a log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [os.fspath(part) for part in command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Started(name=name, pid=process.pid, log=log)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child that exited but was not reaped is a zombie: alive to kill(0), dead to us.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop(pid: int, *, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group, then SIGKILL after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.05)


def kill(pid: int, *, timeout_s: float = 10.0) -> None:
    """SIGKILL to the process group (no chance to clean up, as in a crash); returns once the
    process is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(pid), what=f"waiting for {pid} to die", timeout_s=timeout_s)


def tail(log: pathlib.Path, lines: int = 30) -> str:
    if not log.exists():
        return f"(no log at {log})"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    watch: Started | None = None,
    interval_s: float = 0.1,
) -> None:
    """Polls `ready` until true; fails early with the log's tail if the watched process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if ready():
                return
        if watch is not None and not is_alive(watch.pid):
            raise RuntimeError(f"{watch.name} exited while {what}:\n{tail(watch.log)}")
        time.sleep(interval_s)
    detail = f":\n{tail(watch.log)}" if watch is not None else ""
    raise TimeoutError(f"timed out after {timeout_s:.0f}s {what}{detail}")
