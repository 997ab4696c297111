"""A Databricks run (`jobs/runs/get`) as the run state the spark engine reports, and what to do
next with a BatchJob's run on Databricks: pure.

The run's Jobs 2.2 `status` (`state`, `termination_details{code, type, message}`) is read first,
the older `state` (`life_cycle_state`, `result_state`, `state_message`) where it is absent. A
finished run becomes the Job status it amounts to (a `Complete` or `Failed` condition, as
`batch_status.job_status_of` does for a SparkApplication), so `batch_status.run_view` judges it
with the progress its job published, as it judges a Kubernetes Job. A failed attempt is retried
as a new one-time run (`spec.backoffLimit` retries, each resuming where the last stopped), unless
the job stopped itself for its budget; an attempt the operator cancelled for `spec.suspend` is
not a failure, is watched until it has ended (`stopping`: only then is the BatchJob
Suspended), and unsuspending starts the next attempt.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from tiers.api import batch
from tiers.operator import batch_status, verdicts
from tiers.runtime.batch import progress

FINISHED = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
ACTIVE = frozenset({"RUNNING", "TERMINATING"})
SUCCEEDED = frozenset({"SUCCESS", "SUCCESS_WITH_FAILURES"})
BUDGET_REASONS = frozenset({"OverBudget", "BudgetSpent"})


@dataclasses.dataclass(frozen=True)
class Observed:
    """One Databricks run as `jobs/runs/get` described it."""

    run_id: int
    life_cycle_state: str
    result_state: str | None = None
    termination_code: str | None = None
    termination_type: str | None = None
    message: str = ""
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    run_page_url: str | None = None
    task_run_id: int | None = None

    @property
    def finished(self) -> bool:
        return self.life_cycle_state in FINISHED

    @property
    def succeeded(self) -> bool:
        outcome = self.result_state or self.termination_code
        return self.finished and outcome in SUCCEEDED


def observe(run: Mapping[str, Any]) -> Observed:
    """A `jobs/runs/get` answer (JSON, as the SDK's `Run.as_dict()` gives it)."""
    state = run.get("state") or {}
    status = run.get("status") or {}
    details = status.get("termination_details") or {}
    life_cycle = str(status.get("state") or state.get("life_cycle_state") or "PENDING")
    if life_cycle == "WAITING":  # 2.2's name for 2.1's WAITING_FOR_RETRY
        life_cycle = "WAITING_FOR_RETRY"
    tasks = run.get("tasks") or []
    return Observed(
        run_id=int(run["run_id"]),
        life_cycle_state=life_cycle,
        result_state=state.get("result_state"),
        termination_code=details.get("code"),
        termination_type=details.get("type"),
        message=str(details.get("message") or state.get("state_message") or ""),
        start_time=_from_ms(run.get("start_time")),
        end_time=_from_ms(run.get("end_time")) if life_cycle in FINISHED else None,
        run_page_url=run.get("run_page_url"),
        task_run_id=tasks[0].get("run_id") if tasks else None,
    )


def job_status_of(observed: Observed) -> dict[str, Any]:
    """The Job status a Databricks run amounts to, for `batch_status.run_view`."""
    found: dict[str, Any] = {}
    if observed.start_time is not None:
        found["startTime"] = _stamp(observed.start_time)
    if observed.finished:
        outcome = observed.termination_code or observed.result_state or observed.life_cycle_state
        condition = {
            "type": "Complete" if observed.succeeded else "Failed",
            "status": "True",
            "reason": "Databricks" + _camel(outcome),
            "message": observed.message or f"the Databricks run {observed.run_id} is {outcome}",
        }
        found["conditions"] = [condition]
        if observed.end_time is not None:
            found["completionTime"] = _stamp(observed.end_time)
    elif observed.life_cycle_state in ACTIVE:
        found["active"] = 1
    return found


def run_view(
    name: str,
    record: batch.DatabricksRun,
    observed: Observed | None,
    found: progress.Progress | None,
    *,
    output_uri: str,
    dry_run: bool,
) -> batch_status.RunView:
    """The run as the spark engine would show it; `observed` None: as `record` last saw it."""
    block = record.model_dump(mode="json", by_alias=True, exclude_none=True)
    if record.run_id is None:
        return batch_status.RunView(
            name, "Pending", "Submitting",
            f"attempt {record.attempt} is being submitted to Databricks",
            progress=found, output_uri=output_uri, databricks=block,
        )  # fmt: skip
    if record.stopped:
        ended = not stopping(record)
        return batch_status.RunView(
            name, "Stopped", "Suspended" if ended else "Cancelling",
            f"the Databricks run {record.run_id} was cancelled for spec.suspend"
            + ("; results so far are kept" if ended else f" and is {record.life_cycle_state}"),
            start_time=None if observed is None else observed.start_time,
            completion_time=None if observed is None else observed.end_time,
            progress=found, output_uri=output_uri, databricks=block,
        )  # fmt: skip
    if observed is None:
        return batch_status.RunView(
            name, "Pending", "Submitted", f"the Databricks run {record.run_id} was submitted",
            progress=found, output_uri=output_uri, databricks=block,
        )  # fmt: skip
    view = batch_status.run_view(
        name, job_status_of(observed), found, scheduled_time=None, output_uri=output_uri,
        dry_run=dry_run,
    )  # fmt: skip
    if view.state == "Pending":
        message = f"the Databricks run {observed.run_id} is {observed.life_cycle_state}"
        if observed.message:
            message += f": {observed.message}"
        view = dataclasses.replace(view, reason=_camel(observed.life_cycle_state), message=message)
    return dataclasses.replace(view, databricks=block)


def stopping(record: batch.DatabricksRun) -> bool:
    """Whether the attempt was cancelled (for spec.suspend) and not yet seen to end: Databricks
    cancels a run asynchronously, and its task may go on for a while (TERMINATING)."""
    return record.stopped and record.run_id is not None and record.life_cycle_state not in FINISHED


def cancelling(record: batch.DatabricksRun) -> verdicts.Verdict:
    """Why a suspended BatchJob is not Suspended yet: its cancelled run has not ended."""
    return verdicts.Verdict(
        "Unknown", "Cancelling",
        f"spec.suspend is true: the Databricks run {record.run_id} was cancelled and is "
        f"{record.life_cycle_state}; suspended once it has ended",
    )  # fmt: skip


def recorded(record: batch.DatabricksRun, observed: Observed) -> batch.DatabricksRun:
    """The status block of the run after a look at it."""
    return record.model_copy(
        update={
            "run_page_url": observed.run_page_url or record.run_page_url,
            "life_cycle_state": observed.life_cycle_state,
            "result_state": observed.result_state,
            "termination_code": observed.termination_code,
        }
    )


@dataclasses.dataclass(frozen=True)
class Step:
    """What to do with a BatchJob's run on Databricks now."""

    submit: int | None = None
    """Submit this attempt."""
    failures: int = 0
    """Failed attempts before the one to submit."""
    cancel: bool = False
    """Cancel the recorded attempt (for spec.suspend)."""


def next_step(
    record: batch.DatabricksRun | None,
    observed: Observed | None,
    view_reason: str,
    *,
    suspend: bool,
    backoff_limit: int,
) -> Step:
    """`record` is the attempt status recorded (None: none yet), `observed` how it is now,
    `view_reason` the reason its view gives (the job's own verdict on its budget)."""
    if record is None:
        return Step() if suspend else Step(submit=0)
    if record.run_id is None:  # claimed, and no run of its name found: submit it (again)
        return (
            Step(failures=record.failures)
            if suspend
            else Step(submit=record.attempt, failures=record.failures)
        )
    if suspend:
        running = not record.stopped and (observed is None or not observed.finished)
        return Step(failures=record.failures, cancel=running)
    if record.stopped:
        return Step(submit=record.attempt + 1, failures=record.failures)
    if observed is None or not observed.finished or observed.succeeded:
        return Step(failures=record.failures)
    if view_reason in BUDGET_REASONS or record.failures >= backoff_limit:
        return Step(failures=record.failures)
    return Step(submit=record.attempt + 1, failures=record.failures + 1)


def _camel(name: str) -> str:
    """RUN_EXECUTION_ERROR as RunExecutionError: a condition's reason is CamelCase."""
    return "".join(word.title() for word in name.split("_"))


def _from_ms(value: Any) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromtimestamp(int(value) / 1000, tz=datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
