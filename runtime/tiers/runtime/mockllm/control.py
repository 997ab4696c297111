"""Blocking helpers for tests that steer a running mock through its `/_mock/*` endpoints.

They take the base URL `server.running` yields (with or without the trailing `/v1`). Async code
should call the same endpoints with its own HTTP client rather than these.
"""

import json
import urllib.error
import urllib.request
from typing import Any


def set_faults(base_url: str, **changes: Any) -> dict[str, Any]:
    """Change fault rates, e.g. `set_faults(url, fail_rate_500=1.0)`; returns the faults now."""
    return _call(base_url, "POST", "/_mock/faults", changes)


def fail_next(base_url: str, count: int, *, status: int | str = 500) -> dict[str, Any]:
    """Fail exactly the next `count` inference requests with `status` (or "timeout")."""
    return set_faults(base_url, fail_next={"count": count, "status": status})


def stats(base_url: str) -> dict[str, Any]:
    """Requests received per endpoint and per outcome since the start or the last reset."""
    return _call(base_url, "GET", "/_mock/stats")


def reset(base_url: str) -> None:
    """Zero the stats and restore the faults the server started with."""
    _call(base_url, "POST", "/_mock/reset", {})


def _call(base_url: str, method: str, path: str, body: object = None) -> dict[str, Any]:
    root = base_url.rstrip("/").removesuffix("/v1")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        root + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as e:
        raise ValueError(f"mockllm {method} {path}: {e.code} {e.read().decode()}") from None
    return result
