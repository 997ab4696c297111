"""Local mode's stand-in for the Kubeflow Spark Operator: runs BatchJob runs' SparkApplications.

No Spark Operator runs here (its controller needs container images) and kwok runs no pods. For
the batches that a gateway's Batch API makes (`spark.mode: spark-operator`), this thread watches
one namespace's SparkApplications and runs each as the driver pod would: the batch job's command
as a local process, with the config the operator rendered (in-cluster endpoint URLs mapped to the
local gateways, Spark in local mode) and the key its pod gets from its Secret. It writes the
state the Spark Operator would (RUNNING, then COMPLETED or FAILED), and stops the process when
the operator deletes the application (a suspended BatchJob: a cancelled batch). The demo and the
Batch API's integration test use it.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tiers.operator.manifests import batch_children, model_client

POLL_S = 2.0
"""Each look is a kubectl process: seldom enough to cost little beside Spark itself."""
LOCAL_MASTER = "local[2]"


class LocalSparkOperator(threading.Thread):
    """Runs `namespace`'s SparkApplications locally until `stop()` (see the module)."""

    def __init__(
        self,
        kubectl: list[str],
        namespace: str,
        *,
        endpoint_urls: dict[str, str],
        work_dir: pathlib.Path,
        env: dict[str, str],
        before_run: Callable[[str, str], None] | None = None,
    ) -> None:
        """`before_run(batch job, its key)` is called before a run starts (e.g. to wait until
        the endpoint's gateway accepts that key)."""
        super().__init__(daemon=True, name=f"local-spark-{namespace}")
        self.kubectl, self.namespace = kubectl, namespace
        self.endpoint_urls, self.work_dir, self.env = endpoint_urls, work_dir, env
        self.before_run = before_run
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.stopped: list[str] = []
        """Applications whose process was stopped because the application was deleted."""
        self.error: BaseException | None = None
        self._seen: set[str] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.wait(POLL_S):
                self._step()
        except BaseException as error:  # kept for whoever waits on this thread
            self.error = error
            raise

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        for process in self.running.values():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _step(self) -> None:
        try:
            listed = self._kubectl("get", "sparkapplications", "-n", self.namespace, "-o", "json")
        except subprocess.CalledProcessError:
            return  # the CRD is not served yet, or the apiserver is busy: the next look
        apps = {app["metadata"]["name"]: app for app in json.loads(listed)["items"]}
        for name, process in list(self.running.items()):
            if name not in apps:  # deleted: its pods would be gone too
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
                self.stopped.append(name)
                del self.running[name]
            elif process.poll() is not None:
                self._set_state(name, "COMPLETED" if process.returncode == 0 else "FAILED")
                del self.running[name]
        for name, app in apps.items():
            if name not in self._seen:
                self._seen.add(name)
                self.running[name] = self._start(app)

    def _start(self, app: dict[str, Any]) -> subprocess.Popen[bytes]:
        job = app["metadata"]["ownerReferences"][0]["name"]
        key_secret = json.loads(
            self._kubectl("get", "secret", f"{job}-batch-key", "-n", self.namespace, "-o", "json")
        )
        key = base64.b64decode(key_secret["data"]["key"]).decode()
        if self.before_run is not None:
            self.before_run(job, key)
        configmap = json.loads(
            self._kubectl("get", "configmap", f"{job}-{batch_children.CONFIG.suffix}",
                          "-n", self.namespace, "-o", "json")
        )  # fmt: skip
        settings = json.loads(configmap["data"][batch_children.CONFIG_FILE])
        target = settings["model"]["target"]
        if target.get("url") in self.endpoint_urls:
            target["url"] = self.endpoint_urls[target["url"]]
        settings["master"] = LOCAL_MASTER  # in the cluster, spark-submit gives it
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / f"{self.namespace}-{job}-batch.json"
        config.write_text(json.dumps(settings, indent=2))
        arguments = list(app["spec"]["arguments"])
        arguments[arguments.index("--config") + 1] = str(config)
        with (self.work_dir / f"{self.namespace}-{job}-batch.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tiers.runtime.batch", *arguments],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.env, model_client.KEY_ENV: key},
            )  # fmt: skip
        self._set_state(app["metadata"]["name"], "RUNNING")
        return process

    def _set_state(self, name: str, state: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status: dict[str, Any] = {
            "applicationState": {"state": state},
            "driverInfo": {"podName": f"{name}-driver"},
            "lastSubmissionAttemptTime": now,
        }
        if state != "RUNNING":
            status["terminationTime"] = now
        self._kubectl("patch", "sparkapplication", name, "-n", self.namespace,
                      "--subresource=status", "--type=merge",
                      "-p", json.dumps({"status": status}))  # fmt: skip

    def _kubectl(self, *args: str) -> str:
        return subprocess.run(
            [*self.kubectl, *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout
