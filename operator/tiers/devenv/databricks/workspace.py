"""The state of a Databricks workspace as the test server keeps it: jobs, runs and their life
cycles, secret scopes and workspace files, with the faults a test may inject.

A run's life cycle is Databricks': PENDING (its cluster starting, `pending_s`) → RUNNING (its
Spark Python task running for real, `task_processes.TaskProcess`) → TERMINATING (`terminating_s`) →
TERMINATED with a result state; a cancelled run goes TERMINATING → TERMINATED/CANCELED. Both the
Jobs 2.1 `state` and the 2.2 `status` blocks are kept, as runs/get returns them.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import pathlib
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from tiers.devenv.databricks import tasks as task_processes
from tiers.devenv.databricks import volumes


class ApiError(Exception):
    """An error answer: the HTTP status and Databricks' `error_code` and `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclasses.dataclass
class Run:
    run_id: int
    task_run_id: int
    run_name: str
    tasks: list[dict[str, Any]]
    job_id: int | None
    submitted_s: float
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    termination: tuple[str, str, str] | None = None
    """(code, type, message) of Jobs 2.2's termination_details."""
    start_ms: int = 0
    end_ms: int = 0
    process: task_processes.TaskProcess | None = None
    changed_s: float = 0.0
    cancelled: bool = False
    lose_after_s: float | None = None


@dataclasses.dataclass
class Faults:
    """What the next requests meet: latency before or after handling, errors, refused tokens."""

    latency_s: float = 0.0
    """Before every request is handled."""
    answer_delay_s: dict[str, float] = dataclasses.field(default_factory=dict)
    """After a request to that path was handled, before its answer (the effect is done)."""
    errors: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    """(path prefix, HTTP status) answered once each, in order, instead of handling."""
    lose_cluster_after_s: list[float] = dataclasses.field(default_factory=list)
    """The next runs' clusters are lost that long after their task starts (the run FAILED)."""


class Workspace:
    def __init__(
        self,
        *,
        base_url: Callable[[], str],
        tokens: set[str],
        pending_s: float = 0.5,
        terminating_s: float = 0.3,
        master: str = "local[2]",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url
        self.tokens = set(tokens)
        self.refused: dict[str, int] = {}
        """Tokens that are answered with this status (401: expired, 403: no permission)."""
        self.pending_s = pending_s
        self.terminating_s = terminating_s
        self.master = master
        self.clock = clock
        self.faults = Faults()
        self.lock = threading.RLock()
        self.runs: dict[int, Run] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.tokens_to_runs: dict[str, int] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        """Every request handled: method, path and JSON body (or query)."""
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="tiers-databricks-"))
        self.volumes = volumes.Volumes(self.workdir / "dbfs")
        """DBFS and its Unity Catalog volumes, served by the Files API."""
        self.network: dict[str, str] = {}
        """URLs that a run's task reaches elsewhere from here (a cluster's own network: an
        in-cluster Service URL, as a local server's), replaced in its parameters."""
        self._ids = itertools.count(1001)
        self.task_token = f"dapi-task-{secrets.token_hex(8)}"
        """The token a run's task calls the workspace with (as a cluster's own credentials)."""

    # ---- auth -------------------------------------------------------------------------------

    def authorize(self, header: str | None) -> None:
        token = (header or "").removeprefix("Bearer ").strip()
        if token in self.refused:
            status = self.refused[token]
            if status == 401:
                raise ApiError(401, "UNAUTHENTICATED", "Invalid access token. Token is expired.")
            raise ApiError(status, "PERMISSION_DENIED", "The token has no access to this API.")
        if token not in self.tokens and token != self.task_token:
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")

    # ---- jobs and runs ----------------------------------------------------------------------

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job_id = next(self._ids)
            self.jobs[job_id] = {"job_id": job_id, "settings": body}
            return {"job_id": job_id}

    def run_now(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get(int(body.get("job_id") or 0))
            if job is None:
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", f"Job {body.get('job_id')} does not exist."
                )
            settings = job["settings"]
            run_id = self._start(
                settings.get("name", "job"), settings.get("tasks") or [], job["job_id"],
                body.get("idempotency_token"),
            )  # fmt: skip
            return {"run_id": run_id, "number_in_job": run_id}

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            tasks_ = body.get("tasks") or []
            if not tasks_ or not all(task.get("task_key") for task in tasks_):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "Each task needs a task_key.")
            for task in tasks_:
                if ("new_cluster" in task) == ("existing_cluster_id" in task):
                    raise ApiError(
                        400, "INVALID_PARAMETER_VALUE",
                        "Exactly one of new_cluster or existing_cluster_id is required.",
                    )  # fmt: skip
            return {"run_id": self._start(body.get("run_name", "Untitled"), tasks_, None,
                                          body.get("idempotency_token"))}  # fmt: skip

    def _start(
        self, name: str, tasks_: list[dict[str, Any]], job_id: int | None, token: str | None
    ) -> int:
        if token is not None:
            if len(token) > 64:
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", "idempotency_token is over 64 characters."
                )
            known = self.tokens_to_runs.get(token)
            if known is not None:
                if known not in self.runs:
                    raise ApiError(
                        400, "INVALID_STATE", f"The run {known} of this token was deleted."
                    )
                return known
        run_id = next(self._ids)
        now = self.clock()
        lose = self.faults.lose_cluster_after_s.pop(0) if self.faults.lose_cluster_after_s else None
        self.runs[run_id] = Run(
            run_id=run_id, task_run_id=next(self._ids), run_name=name, tasks=tasks_,
            job_id=job_id, submitted_s=now, changed_s=now, lose_after_s=lose,
            start_ms=int(now * 1000),  # Jobs 2.2: when the run began, its cluster's set-up too
        )  # fmt: skip
        if token is not None:
            self.tokens_to_runs[token] = run_id
        return run_id

    def cancel(self, run_id: int) -> dict[str, Any]:
        with self.lock:
            run = self._run(run_id)
            if run.life_cycle_state in ("TERMINATED", "TERMINATING", "SKIPPED", "INTERNAL_ERROR"):
                return {}
            run.cancelled = True
            if run.process is not None:
                run.process.kill()
            self._terminate(run, "CANCELED", ("USER_CANCELED", "SUCCESS", "The run was cancelled."))
            return {}

    def get_run(self, run_id: int) -> dict[str, Any]:
        with self.lock:
            self.advance()
            run = self._run(run_id)
            return self._describe(run)

    def list_runs(self, query: dict[str, str]) -> dict[str, Any]:
        """Newest first, filtered as Jobs 2.2 filters, a page at a time (`next_page_token`)."""
        with self.lock:
            self.advance()
            runs = sorted(self.runs.values(), key=lambda r: -r.run_id)
            if query.get("job_id"):
                runs = [r for r in runs if r.job_id == int(query["job_id"])]
            if query.get("run_type") == "SUBMIT_RUN":
                runs = [r for r in runs if r.job_id is None]
            elif query.get("run_type") == "JOB_RUN":
                runs = [r for r in runs if r.job_id is not None]
            if query.get("active_only") == "true":
                runs = [r for r in runs if r.life_cycle_state != "TERMINATED"]
            if query.get("start_time_from"):
                runs = [r for r in runs if r.start_ms >= int(query["start_time_from"])]
            limit = int(query.get("limit") or 20)
            if not 0 < limit <= 25:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "limit must be between 1 and 25.")
            offset = int(query.get("page_token") or query.get("offset") or 0)
            page = runs[offset : offset + limit]
            more = offset + limit < len(runs)
            found: dict[str, Any] = {"runs": [self._describe(r) for r in page], "has_more": more}
            if more:
                found["next_page_token"] = str(offset + limit)
            return found

    def get_output(self, run_id: int) -> dict[str, Any]:
        with self.lock:
            self.advance()
            run = next((r for r in self.runs.values() if r.task_run_id == run_id), None)
            if run is None:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} is not a task run.")
            found: dict[str, Any] = {"metadata": self._describe(run)}
            if run.process is not None:
                found["logs"], found["logs_truncated"] = run.process.logs()
            if run.result_state == "FAILED" and run.termination is not None:
                found["error"] = run.termination[2]
            return found

    def _run(self, run_id: int) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        return run

    def advance(self) -> None:
        """Moves every run along its life cycle as the time and its task say."""
        with self.lock:
            now = self.clock()
            for run in self.runs.values():
                self._advance(run, now)

    def _advance(self, run: Run, now: float) -> None:
        if run.life_cycle_state == "PENDING" and now - run.changed_s >= self.pending_s:
            run.life_cycle_state, run.changed_s = "RUNNING", now
            run.state_message = "In run"
            try:
                run.process = task_processes.start(self, run)
            except task_processes.TaskError as error:
                self._terminate(
                    run, "FAILED", ("INVALID_CLUSTER_REQUEST", "CLIENT_ERROR", str(error))
                )
        elif run.life_cycle_state == "RUNNING" and run.process is not None:
            if run.lose_after_s is not None and now - run.changed_s >= run.lose_after_s:
                run.process.kill()
                self._terminate(run, "FAILED", ("CLUSTER_ERROR", "CLOUD_FAILURE",
                                                "The cluster's driver was lost."))  # fmt: skip
                return
            code = run.process.poll()
            if code is None:
                return
            if code == 0:
                self._terminate(run, "SUCCESS", ("SUCCESS", "SUCCESS", ""))
            else:
                self._terminate(run, "FAILED", ("RUN_EXECUTION_ERROR", "CLIENT_ERROR",
                    f"Workload failed: the Python process exited with code {code}."))  # fmt: skip
        elif run.life_cycle_state == "TERMINATING" and now - run.changed_s >= self.terminating_s:
            run.life_cycle_state, run.changed_s = "TERMINATED", now
            run.end_ms = int(now * 1000)

    def _terminate(self, run: Run, result: str, termination: tuple[str, str, str]) -> None:
        run.life_cycle_state, run.result_state = "TERMINATING", result
        run.termination, run.changed_s = termination, self.clock()
        run.state_message = termination[2]

    def _describe(self, run: Run) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": run.life_cycle_state,
            "state_message": run.state_message,
            "user_cancelled_or_timedout": run.cancelled,
        }
        status: dict[str, Any] = {"state": run.life_cycle_state}
        if run.life_cycle_state == "TERMINATED" and run.result_state is not None:
            state["result_state"] = run.result_state
            code, type_, message = run.termination or ("SUCCESS", "SUCCESS", "")
            status["termination_details"] = {"code": code, "type": type_, "message": message}
        described: dict[str, Any] = {
            "run_id": run.run_id,
            "run_name": run.run_name,
            "run_page_url": f"{self.base_url()}/#job/{run.job_id or 0}/run/{run.run_id}",
            "state": state,
            "status": status,
            "start_time": run.start_ms,
            "end_time": run.end_ms,
            "run_type": "JOB_RUN" if run.job_id else "SUBMIT_RUN",
            "tasks": [
                {**task, "run_id": run.task_run_id, "state": state, "status": status}
                for task in run.tasks[:1]
            ],
        }
        if run.job_id is not None:
            described["job_id"] = run.job_id
        return described

    def cluster_view(self, parameter: str) -> str:
        """A task's parameter as the task must read it here: its `dbfs:/` URIs under the local
        DBFS folder, and the URLs of `network` replaced."""
        found = self.volumes.cluster_view(parameter)
        for url, local in self.network.items():
            found = found.replace(url, local)
        return found

    # ---- secrets and workspace files --------------------------------------------------------

    def create_scope(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            scope = str(body.get("scope") or "")
            if scope in self.secrets:
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Scope {scope} already exists!")
            self.secrets[scope] = {}
            return {}

    def put_secret(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            scope = self._scope(str(body.get("scope") or ""))
            if "string_value" in body:
                scope[str(body["key"])] = str(body["string_value"]).encode()
            else:
                scope[str(body["key"])] = base64.b64decode(body.get("bytes_value") or "")
            return {}

    def get_secret(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            scope = self._scope(query.get("scope", ""))
            value = scope.get(query.get("key", ""))
            if value is None:
                raise ApiError(
                    404, "RESOURCE_DOES_NOT_EXIST", f"Secret {query.get('key')} does not exist."
                )
            return {"key": query["key"], "value": base64.b64encode(value).decode()}

    def _scope(self, name: str) -> dict[str, bytes]:
        if name not in self.secrets:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {name} does not exist!")
        return self.secrets[name]

    def import_file(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            path = task_processes.workspace_path(str(body.get("path") or ""))
            if path in self.files and not body.get("overwrite"):
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
            self.files[path] = base64.b64decode(body.get("content") or "")
            return {}
