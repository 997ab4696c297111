"""The console's part of `make demo`: the console itself, a BatchJob to upload to from it, a
local runner for that job, and a trickle of traffic so that its charts move.

kwok's pods run nothing, so what a pod would run runs here as a local process: the console
reaches the gateway and push gateway at their local URLs (`--url-override`), and a BatchJob the
console starts (`uploads`, suspended until then) is run from its rendered config by
`UploadRunner` once it is unsuspended, writing under the demo's batch folder, which is the
console's `--batch-root`.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import urllib.request
from typing import Any

from tiers.devenv import cluster, dataplane, processes
from tiers.operator.manifests import batch_children, labels

PORT = 8088
UPLOADS = "uploads"
TRAFFIC_SECONDS = 2.0


def start(
    env: cluster.DevCluster,
    *,
    namespace: str,
    batch_root: pathlib.Path,
    url_overrides: dict[str, str],
) -> tuple[str, processes.Started]:
    """The console on :8088 (another free port when taken), reading with the dev cluster's
    admin account for callers without a token (the demo's browser), as a local process."""
    port = PORT if _free(PORT) else processes.free_port()
    overrides = [arg for pair in url_overrides.items()
                 for arg in ("--url-override", "=".join(pair))]  # fmt: skip
    started = processes.start(
        "console",
        [sys.executable, "-m", "tiers.console", "--host", "127.0.0.1", "--port", str(port),
         "--allow-anonymous-read", "--allow-anonymous-write", "--namespace", namespace,
         "--batch-root", str(batch_root), "--series-file", str(batch_root.parent / "series.json"),
         *overrides],
        log_dir=env.log_dir,
        env={**os.environ, **env.env()},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(
        lambda: _ok(f"{url}/api/v1/resources?namespace={namespace}"),
        what="waiting for the console", timeout_s=60, watch=started,
    )  # fmt: skip
    return url, started


def uploads_job(
    namespace: str, *, model: dict[str, Any], batch_root: pathlib.Path
) -> dict[str, Any]:
    """A one-off BatchJob, suspended, whose input the console uploads and that it starts."""
    return {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": UPLOADS, "namespace": namespace},
        "spec": {
            "engine": "spark",
            "suspend": True,
            "input": {"uri": (batch_root / UPLOADS / "input.jsonl").as_uri(), "format": "jsonl"},
            "output": {"uri": (batch_root / UPLOADS / "results").as_uri(), "format": "jsonl"},
            "model": model,
            "budget": {"maxUSD": "1"},
        },
    }


class UploadRunner(threading.Thread):
    """Runs the `uploads` BatchJob here, once, when the console has started it."""

    def __init__(
        self, kubectl: list[str], env: cluster.DevCluster, *, namespace: str,
        batch_root: pathlib.Path, endpoint_urls: dict[str, str],
    ) -> None:  # fmt: skip
        super().__init__(name="demo-upload-runner", daemon=True)
        self.kubectl, self.env, self.namespace = kubectl, env, namespace
        self.batch_root, self.endpoint_urls = batch_root, endpoint_urls
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            found = subprocess.run(
                [*self.kubectl, "get", "bjob", UPLOADS, "-n", self.namespace, "-o", "json"],
                capture_output=True, text=True,
            )  # fmt: skip
            if found.returncode != 0 or json.loads(found.stdout)["spec"].get("suspend", False):
                continue
            ref = labels.Ref(UPLOADS, self.namespace)
            log = self.env.log_dir / "uploads-batch.log"
            try:
                with log.open("a") as out:
                    finished = dataplane.run_batch(
                        self.kubectl, namespace=self.namespace, job=UPLOADS,
                        run=batch_children.one_off_run_name(ref),
                        output_uri=(self.batch_root / UPLOADS / "results").as_uri(),
                        endpoint_urls=self.endpoint_urls, work_dir=self.env.log_dir,
                    )  # fmt: skip
                    out.write(finished.stdout)
            except (subprocess.SubprocessError, OSError, RuntimeError) as error:
                with log.open("a") as out:
                    out.write(f"the uploads run failed: {error}\n")
            return


class Traffic(threading.Thread):
    """A chat request every `TRAFFIC_SECONDS` (the same four prompts: misses, then cache hits)
    and a review to the pipeline every other time, until stopped."""

    def __init__(self, *, gateway: str, push: str, prompts: tuple[str, ...]) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.gateway, self.push, self.prompts = gateway, push, prompts
        self.stopped = threading.Event()

    def run(self) -> None:
        sent = 0
        while not self.stopped.wait(TRAFFIC_SECONDS):
            prompt = self.prompts[sent % len(self.prompts)]
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
            _post(self.gateway + "/v1/chat/completions", body)
            if sent % 2 == 0:
                _post(
                    self.push + "/events", [{"id": f"live-{sent}", "text": f"Live review {sent}"}]
                )
            sent += 1


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError:
        pass  # a busy or restarting server: the next tick tries again


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
