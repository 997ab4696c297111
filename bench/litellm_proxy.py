"""The LiteLLM proxy as a baseline: installed into a virtual environment of its own, configured
with one model on the mock backend, no database, no cache.

The environment lives under the user's cache (`~/.cache/tiers/bench-venv-litellm`), is created on
first use from `requirements-litellm.txt`, and is reinstalled only when the pinned version changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator

import servers
from payloads import MODEL

REQUIREMENTS = pathlib.Path(__file__).with_name("requirements-litellm.txt")
VENV = (
    pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    / "tiers"
    / "bench-venv-litellm"
)
# The proxy refuses to start without a master key; clients send it as their bearer token.
MASTER_KEY = "sk-tiers-bench-litellm"
_STARTUP_TIMEOUT_S = 180.0
_ENV = {
    # Offline: the proxy would otherwise download its model cost map at startup.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
}


def pinned_version() -> str:
    match = re.search(r"^litellm\[proxy\]==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{REQUIREMENTS} does not pin litellm[proxy]==VERSION")
    return match.group(1)


def installed_version() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    completed = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def ensure_installed() -> str:
    """The installed version, after installing the pinned one if it is not there yet."""
    version = installed_version()
    if version == pinned_version():
        return version
    print(f"installing LiteLLM {pinned_version()} into {VENV} (once)", file=sys.stderr)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    version = installed_version()
    if version is None:
        raise RuntimeError(f"LiteLLM did not install into {VENV}")
    return version


def config(backend: servers.Server) -> str:
    """The proxy's config.yaml (JSON is YAML): one model routed to the mock, caching off."""
    return json.dumps(
        {
            "model_list": [
                {
                    "model_name": MODEL,
                    "litellm_params": {
                        "model": f"openai/{MODEL}",
                        "api_base": f"{backend.url}/v1",
                        "api_key": "sk-mock",
                    },
                }
            ],
            "litellm_settings": {"cache": False},
            "general_settings": {"master_key": MASTER_KEY},
        },
        indent=2,
    )


@contextlib.contextmanager
def running(
    backend: servers.Server, *, workers: int, logs: pathlib.Path
) -> Iterator[servers.Server]:
    config_path = logs / "litellm-config.yaml"
    config_path.write_text(config(backend))
    port = servers.free_port()
    argv = [str(VENV / "bin" / "litellm"), "--config", str(config_path)]
    argv += ["--host", servers.HOST, "--port", str(port), "--num_workers", str(workers)]
    with servers.running(
        "litellm",
        argv,
        port=port,
        is_ready=servers.http_ok("/health/liveliness"),
        logs=logs,
        startup_timeout_s=_STARTUP_TIMEOUT_S,
        env=_ENV,
    ) as server:
        yield server
