"""The servers a benchmark starts: each one a subprocess on a free 127.0.0.1 port.

`running(...)` starts a server, waits until it answers, and stops it (and every process it
forked) when the `with` block ends, also on Ctrl-C or an error. A server that fails to start
raises `ServerFailed` with the tail of its log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping

HOST = "127.0.0.1"
_STOP_TIMEOUT_S = 10.0
_LOG_TAIL_BYTES = 3000
_OTHER_WORKERS_SETTLE_S = 1.0


class ServerFailed(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(
    name: str,
    argv: list[str],
    *,
    port: int,
    is_ready: Callable[[int], bool],
    logs: pathlib.Path,
    startup_timeout_s: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C in the terminal reaches only the bench, which then stops
        # the whole group (uvicorn's worker processes included) itself.
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        except OSError as error:
            raise ServerFailed(f"{name}: cannot run {argv[0]}: {error}") from None
        try:
            _wait_ready(name, process, port, is_ready, startup_timeout_s, log_path)
            yield Server(name, port, process.pid)
        finally:
            _stop(process)


def cpu_seconds(server: Server) -> float:
    """User + system CPU time used so far by the server's process group (its workers included).

    Linux only: it reads /proc. On a shared machine this stays closer to the server's own cost
    than req/s does, which falls whenever another process takes the cores.
    """
    ticks = 0
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the command name: state, ppid, pgrp, ..., utime (12th), stime.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == server.pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def http_ok(path: str) -> Callable[[int], bool]:
    """A readiness check: GET `path` answers 200."""

    def check(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=1) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    return check


def log_says(log_path: pathlib.Path, text: str) -> Callable[[int], bool]:
    """A readiness check for a process that serves no port: its log holds `text`."""

    def check(_port: int) -> bool:
        try:
            return text.encode() in log_path.read_bytes()
        except OSError:
            return False

    return check


def log_tail(log_path: pathlib.Path) -> str:
    """The end of a server's log, for an error message."""
    return _tail(log_path)


def redis_pong(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis(logs: pathlib.Path) -> Iterator[Server]:
    port = free_port()
    argv = ["redis-server", "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    with running("redis", argv, port=port, is_ready=redis_pong, logs=logs) as server:
        yield server


@contextlib.contextmanager
def mock_backend(
    logs: pathlib.Path, *, latency_ms: float = 0.0, name: str | None = None
) -> Iterator[Server]:
    """The mock model server; `latency_ms` is its fixed delay before each reply; `name` names
    its log (default: `mockllm`, with the latency if any)."""
    port = free_port()
    argv = [sys.executable, "-m", "tiers.runtime.mockllm", "--port", str(port)]
    argv += ["--log-level", "warning"]
    if latency_ms:
        argv += ["--latency-ms", f"{latency_ms:g}"]
    if name is None:
        name = f"mockllm-{latency_ms:g}ms" if latency_ms else "mockllm"
    with running(name, argv, port=port, is_ready=http_ok("/healthz"), logs=logs) as server:
        yield server


@dataclasses.dataclass(frozen=True)
class GatewayOptions:
    """How a gateway under test is set up; `None` leaves a feature off."""

    label: str
    workers: int
    api_keys_dir: pathlib.Path | None = None
    requests_per_minute: int | None = None


@contextlib.contextmanager
def gateway(
    options: GatewayOptions, *, backend: Server, redis_server: Server, logs: pathlib.Path
) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "tiers.runtime.gateway", "--port", str(port)]
    argv += ["--workers", str(options.workers)]
    argv += ["--backend", f"openai-compatible={backend.url}/v1"]
    argv += ["--redis", f"redis://{HOST}:{redis_server.port}/0"]
    if options.api_keys_dir is not None:
        argv += ["--api-keys-dir", str(options.api_keys_dir)]
    if options.requests_per_minute is not None:
        argv += ["--rpm", str(options.requests_per_minute)]
    name = f"gateway-{options.label}-{options.workers}w"
    with running(name, argv, port=port, is_ready=http_ok("/healthz"), logs=logs) as server:
        if options.workers > 1:
            # /healthz answers once the first worker is up; the others started with it and need
            # a moment more, so that none is still importing when the warm-up load begins.
            time.sleep(_OTHER_WORKERS_SETTLE_S)
        yield server


def _wait_ready(
    name: str,
    process: subprocess.Popen[bytes],
    port: int,
    is_ready: Callable[[int], bool],
    timeout_s: float,
    log_path: pathlib.Path,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not is_ready(port):
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited with {process.returncode}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise ServerFailed(f"{name} not ready within {timeout_s:g} s:\n{_tail(log_path)}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(log_path: pathlib.Path) -> str:
    data = log_path.read_bytes()[-_LOG_TAIL_BYTES:]
    return data.decode(errors="replace")
