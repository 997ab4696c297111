"""Runs a submitted Spark Python task for real: the task's `python_file` (a workspace file) with
its `parameters`, in a process of its own on local Spark, as a Databricks cluster's driver would.

The process gets what a Databricks cluster gives its driver: a Spark master (`local[N]` here),
`spark_env_vars` with `{{secrets/<scope>/<key>}}` references resolved, and the workspace's host
and a token of the cluster's own (`DATABRICKS_HOST`, `DATABRICKS_TOKEN`, which
`databricks.sdk.runtime.dbutils` reads secrets with). `libraries` are not installed: the
process runs on this environment's Python, where tiers is installed already. Its parameters
are seen as the cluster sees them (`Workspace.cluster_view`): `dbfs:/` is the workspace's
local DBFS folder, and the URLs of `Workspace.network` lead where it says.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiers.devenv.databricks import workspace

LOG_TAIL_BYTES = 64 * 1024
_SECRET_REFERENCE = re.compile(r"\{\{secrets/([^/}]+)/([^}]+)\}\}")


class TaskError(Exception):
    """The task cannot start (no such file, an unknown secret): the run fails at once."""


class TaskProcess:
    def __init__(self, process: subprocess.Popen[bytes], log: str) -> None:
        self.process = process
        self.log = log

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        """The driver and its Spark JVM (its own process group) end at once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def logs(self) -> tuple[str, bool]:
        """The end of what the task wrote to stdout and stderr, and whether it was cut."""
        with open(self.log, "rb") as out:
            out.seek(0, os.SEEK_END)
            size = out.tell()
            out.seek(max(size - LOG_TAIL_BYTES, 0))
            return out.read().decode(errors="replace"), size > LOG_TAIL_BYTES


def start(space: workspace.Workspace, run: workspace.Run) -> TaskProcess:
    task = run.tasks[0]
    python_task = task.get("spark_python_task")
    if not python_task:
        raise TaskError("this test workspace runs spark_python_task tasks only")
    path = workspace_path(str(python_task.get("python_file") or ""))
    source = space.files.get(path)
    if source is None:
        raise TaskError(f"python_file {python_task.get('python_file')} does not exist")
    folder = space.workdir / f"run-{run.run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / path.rsplit("/", 1)[-1]
    script.write_bytes(source)
    cluster = task.get("new_cluster") or {}
    env = {
        **os.environ,
        **{name: resolve(space, str(value)) for name, value in
           (cluster.get("spark_env_vars") or {}).items()},
        "PYSPARK_SUBMIT_ARGS": f"--master {space.master} pyspark-shell",
        "DATABRICKS_HOST": space.base_url(),
        "DATABRICKS_TOKEN": space.task_token,
    }  # fmt: skip
    log = folder / "driver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(script),
             *[space.cluster_view(str(p)) for p in python_task.get("parameters") or []]],
            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return TaskProcess(process, str(log))


def resolve(space: workspace.Workspace, value: str) -> str:
    """A `spark_env_vars` value with its `{{secrets/scope/key}}` references replaced."""

    def secret(match: re.Match[str]) -> str:
        found = space.secrets.get(match.group(1), {}).get(match.group(2))
        if found is None:
            raise TaskError(f"secret {match.group(1)}/{match.group(2)} does not exist")
        return found.decode()

    return _SECRET_REFERENCE.sub(secret, value)


def workspace_path(path: str) -> str:
    """A workspace path with or without the /Workspace prefix names the same file."""
    return "/" + path.removeprefix("/Workspace").lstrip("/")
