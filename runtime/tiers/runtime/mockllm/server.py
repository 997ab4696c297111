"""Serving the mock app with uvicorn: blocking for the command line, in a thread for tests.

`running(config)` binds the socket before the server thread starts, so the base URL it yields
takes connections at once; it works the same from sync and async tests.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from tiers.runtime.mockllm import app, config

_STARTUP_TIMEOUT_S = 10.0
# Shutdown cancels requests still held by a timeout fault after this long.
_GRACEFUL_SHUTDOWN_S = 1


def run(cfg: config.MockConfig, *, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); what `python -m tiers.runtime.mockllm` does."""
    sock = _bind(cfg)
    print(f"mockllm listening on {base_url(cfg.host, sock.getsockname()[1])}", flush=True)
    with sock:
        uvicorn.Server(_uvicorn_config(cfg, log_level=log_level)).run(sockets=[sock])


@contextlib.contextmanager
def running(cfg: config.MockConfig | None = None) -> Iterator[str]:
    """Serve `cfg` (defaults: free port, no faults) in a background thread; yield its base URL.

    The URL ends in `/v1`, ready for `openai.OpenAI(base_url=...)`; `/_mock/*` sits beside it.
    """
    cfg = cfg or config.MockConfig()
    sock = _bind(cfg)
    # log_config=None leaves the test process's logging as it was.
    server = uvicorn.Server(_uvicorn_config(cfg, log_level="warning", log_config=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mockllm", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield base_url(cfg.host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=_GRACEFUL_SHUTDOWN_S + 5)
        sock.close()


def base_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/v1"


def _uvicorn_config(cfg: config.MockConfig, *, log_level: str, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app.build_app(cfg),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level=log_level,
        backlog=4096,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        **extra,
    )


def _bind(cfg: config.MockConfig) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError:
        sock.close()
        raise
    sock.listen(4096)
    return sock


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("mockllm stopped during startup; see the log above")
        if time.monotonic() > deadline:
            raise RuntimeError(f"mockllm did not start within {_STARTUP_TIMEOUT_S:g} s")
        time.sleep(0.005)
