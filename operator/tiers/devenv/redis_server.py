"""A throwaway redis-server on a free loopback port, for the dev environment and tests."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import socket

from tiers.devenv import processes


@dataclasses.dataclass(frozen=True)
class RedisServer:
    url: str
    port: int
    process: processes.Started

    def stop(self) -> None:
        processes.stop(self.process.pid, grace_s=5)


def start(log_dir: pathlib.Path, *, name: str = "redis", port: int | None = None) -> RedisServer:
    """A redis-server on `port` (a free one if None): a test restarts one where it was."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH (Debian package: redis-server)")
    port = port or processes.free_port()
    started = processes.start(
        name,
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--protected-mode", "yes", "--daemonize", "no"],
        log_dir=log_dir,
    )  # fmt: skip
    processes.wait_until(
        lambda: ping(port), what="waiting for redis-server", timeout_s=20, watch=started
    )
    return RedisServer(url=f"redis://127.0.0.1:{port}/0", port=port, process=started)


def ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
