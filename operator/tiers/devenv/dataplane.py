"""Local mode: run, as a local process, the data plane that a kwok pod stands for.

kwok pods never run containers, so the demo and the tests start the same program the pod would
run, with the same config (read from the ConfigMap the operator rendered) and the same
environment, on a loopback port.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import urllib.request

from tiers.devenv import processes


def rendered_gateway_config(kubectl: list[str], namespace: str, endpoint: str) -> str:
    """The gateway.json the operator rendered for a RealtimeEndpoint."""
    result = subprocess.run(
        [*kubectl, "get", "configmap", f"{endpoint}-gateway", "-n", namespace, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data: str = json.loads(result.stdout)["data"]["gateway.json"]
    return data


def start_gateway(
    kubectl: list[str],
    *,
    namespace: str,
    endpoint: str,
    redis_url: str,
    work_dir: pathlib.Path,
    env: dict[str, str] | None = None,
) -> tuple[str, processes.Started]:
    """Starts the endpoint's gateway on a free port; returns its base URL once it is healthy."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / f"{namespace}-{endpoint}-gateway.json"
    config.write_text(rendered_gateway_config(kubectl, namespace, endpoint))
    port = processes.free_port()
    started = processes.start(
        f"gateway-{namespace}-{endpoint}",
        [sys.executable, "-m", "tiers.runtime.gateway", "--config", config, "--port", str(port)],
        log_dir=work_dir,
        env={**os.environ, **(env or {}), "TIERS_REDIS_URL": redis_url},
    )
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(
        lambda: _ok(url + "/healthz"), what="waiting for the gateway", timeout_s=30, watch=started
    )
    return url, started


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
