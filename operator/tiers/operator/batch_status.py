"""The status a BatchJob should show, from what the operator observed: pure.

A run is a Kubernetes Job (`manifests.batch_children`) plus the progress its batch job publishes
to Redis (`tiers.runtime.batch.progress`). The Job says whether the run is over and how it ended;
the progress says how far it got, what it cost and what it was estimated at, and why the job
stopped itself (over its budget). Conditions:

- `Submitted`: the latest run's Job exists;
- `Estimated`: the latest run has an estimate (records, tokens, cost, duration);
- `Succeeded`: the latest run succeeded (True), failed (False) or is pending or running (Unknown);
- `Notified` (with `spec.notification`): the latest finished run's webhook was delivered.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tiers.api import batch
from tiers.operator import verdicts
from tiers.runtime import pricing
from tiers.runtime.batch import progress

TERMINAL = frozenset({"Succeeded", "Failed"})
WINDOW = "run"
"""What `progress` and `cost` cover: the latest run, all its attempts."""
_EXIT_CODE = re.compile(r"exit code ([0-9]+)")
_BY_EXIT_CODE = {code: state for state, code in progress.EXIT_CODES.items()}


@dataclasses.dataclass(frozen=True)
class RunView:
    """One run as observed: its Job's state and the progress its job published."""

    name: str
    state: batch.RunState
    reason: str
    message: str
    scheduled_time: datetime.datetime | None = None
    start_time: datetime.datetime | None = None
    completion_time: datetime.datetime | None = None
    progress: progress.Progress | None = None
    output_uri: str | None = None
    databricks: Mapping[str, Any] | None = None
    """The run's Databricks run (`engine: databricks`), as status shows it."""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


def run_view(
    name: str,
    job_status: Mapping[str, Any] | None,
    found: progress.Progress | None,
    *,
    scheduled_time: datetime.datetime | None,
    output_uri: str,
    dry_run: bool = False,
) -> RunView:
    """A run from its Job's `status` (None: the Job is gone or not made yet) and its progress."""
    status = job_status or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"
    }
    start_time = parse_time(status.get("startTime"))
    completion_time = parse_time(status.get("completionTime"))

    def view(state: batch.RunState, reason: str, message: str) -> RunView:
        return RunView(name, state, reason, message, scheduled_time, start_time=start_time,
                       completion_time=completion_time, progress=found,
                       output_uri=output_uri)  # fmt: skip

    if "Complete" in conditions:
        if dry_run:
            return view("Succeeded", "DryRun", "estimated; nothing was scored (spec.dryRun)")
        return view("Succeeded", "Succeeded", _done_message(found))
    failed = conditions.get("Failed")
    if failed is not None:
        reason, message = _failure(failed, found)
        return view("Failed", reason, message)
    if job_status is None:
        return view("Pending", "Pending", f"the Job {name} is being created")
    if int(status.get("active") or 0) == 0:
        return view("Pending", "Pending", f"the Job {name} waits for its pod")
    if found is not None and found.state == "Estimating":
        return view("Estimating", "Estimating", "counting the input and estimating the cost")
    if found is not None and found.state in ("OverBudget", "BudgetSpent"):
        return view("Running", found.state, found.message)
    return view("Running", "Running", _running_message(found))


def _failure(condition: Mapping[str, Any], found: progress.Progress | None) -> tuple[str, str]:
    """Why a Job failed: the job's own verdict on its budget first, then the Job's reason."""
    message = str(condition.get("message") or "")
    match = _EXIT_CODE.search(message)
    by_code = _BY_EXIT_CODE.get(int(match.group(1))) if match else None
    if found is not None and found.state in ("OverBudget", "BudgetSpent"):
        return found.state, found.message
    if by_code in ("OverBudget", "BudgetSpent"):
        return by_code, f"the batch job exited with code {match.group(1) if match else '?'}"
    if found is not None and found.state == "Failed" and found.message:
        return "Failed", found.message
    reason = str(condition.get("reason") or "Failed")
    return reason, message or "the Job failed"


def _done_message(found: progress.Progress | None) -> str:
    if found is None:
        return "the run finished"
    return (
        f"{found.done:,} records scored, {found.failed:,} failed, "
        f"${pricing.format_usd(found.cost_usd)}"
    )


def _running_message(found: progress.Progress | None) -> str:
    if found is None or found.percent is None:
        return "the run is scoring records"
    return (
        f"{found.percent}% ({found.done + found.failed:,} of {found.total:,}), "
        f"{found.records_per_second:,} records/s, ${pricing.format_usd(found.cost_usd)} so far"
    )


_SPARK_DONE = {"COMPLETED": "Complete", "FAILED": "Failed", "SUBMISSION_FAILED": "Failed"}


def job_status_of(app: Mapping[str, Any]) -> dict[str, Any]:
    """A SparkApplication's state (as the Spark Operator writes it) as the Job status it amounts
    to: a finished application a Complete or Failed condition, a started one an active pod."""
    status = app.get("status") or {}
    state = status.get("applicationState") or {}
    name = str(state.get("state") or "")
    found: dict[str, Any] = {}
    if status.get("lastSubmissionAttemptTime"):
        found["startTime"] = status["lastSubmissionAttemptTime"]
    done = _SPARK_DONE.get(name)
    if done is not None:
        message = str(state.get("errorMessage") or f"the SparkApplication is {name}")
        found["conditions"] = [
            {"type": done, "status": "True", "reason": f"SparkApplication{name.title()}",
             "message": message},
        ]  # fmt: skip
        if status.get("terminationTime"):
            found["completionTime"] = status["terminationTime"]
    elif name:
        found["active"] = 1
    return found


@dataclasses.dataclass(frozen=True)
class Observed:
    runs: Sequence[RunView]
    """Every run whose Job exists, and the one just started; oldest first."""
    waiting: verdicts.Verdict | None = None
    """Why no run is going when none is (suspended, the next scheduled time, a missing endpoint)."""
    next_run: datetime.datetime | None = None
    last_schedule_time: datetime.datetime | None = None
    notified: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    """Runs whose notice went out, by name."""
    notify_error: str | None = None
    stats_unavailable: bool = False
    """The stats store did not answer: status keeps its last figures and marks them stale."""


def desired_status(
    observed: Observed,
    *,
    spec: batch.BatchJobSpec,
    body: Mapping[str, Any],
    now: datetime.datetime,
) -> dict[str, Any]:
    latest = observed.runs[-1] if observed.runs else None
    found = latest.progress if latest is not None else None
    conditions = {
        "Submitted": _submitted(latest, observed.waiting),
        "Estimated": _estimated(found),
        "Succeeded": _succeeded(latest, observed.waiting),
    }
    if spec.notification is not None:
        conditions["Notified"] = _notified(latest, observed)
    status = verdicts.stamp(body, conditions, now=now, scheduled=spec.schedule is not None)
    status["state"] = _state(latest, observed.waiting)
    status["runs"] = [_run_record(run, observed) for run in observed.runs]
    if latest is not None:
        status["lastRun"] = status["runs"][-1]
        status["startTime"] = _stamp(latest.start_time)
        status["completionTime"] = _stamp(latest.completion_time)
        if latest.start_time is not None:
            end = latest.completion_time or now
            status["durationSeconds"] = max(int((end - latest.start_time).total_seconds()), 0)
    if observed.next_run is not None:
        status["nextRun"] = _stamp(observed.next_run)
    if observed.last_schedule_time is not None:
        status["lastScheduleTime"] = _stamp(observed.last_schedule_time)
    if found is not None and latest is not None:
        status.update(_numbers(found, stale=_no_longer_updated(latest, found, now), now=now))
    else:
        status.update(
            verdicts.kept_figures(body, "progress", "cost", stale=observed.stats_unavailable)
        )
        status.update(verdicts.kept(body, "estimate"))
    return {key: value for key, value in status.items() if value is not None}


def _no_longer_updated(run: RunView, found: progress.Progress, now: datetime.datetime) -> bool:
    """Whether a running run's progress stopped being published (a finished run's is final):
    none for `progress.STALE_AFTER_INTERVALS` of the intervals the job says it publishes at."""
    if run.state != "Running" or found.state != "Running":
        return False
    return now.timestamp() - found.updated_s > found.stale_after_s


def _numbers(found: progress.Progress, *, stale: bool, now: datetime.datetime) -> dict[str, Any]:
    counted = {
        "total": found.total,
        "done": found.done,
        "failed": found.failed,
        "percent": found.percent or 0,
        "recordsPerSecond": found.records_per_second,
    }
    if found.total is None:
        del counted["total"]
    spent = {
        "totalUSD": pricing.format_usd(found.cost_usd),
        "perRecordUSD": pricing.format_usd(found.per_record_usd),
    }
    numbers: dict[str, Any] = {
        "progress": verdicts.windowed(counted, now=now, window=WINDOW, stale=stale),
        "cost": verdicts.windowed(spent, now=now, window=WINDOW, stale=stale),
    }
    estimate = found.estimate
    if estimate is not None:
        numbers["cost"]["estimateUSD"] = pricing.format_usd(estimate.cost_usd)
        numbers["estimate"] = {
            "records": estimate.records,
            "inputTokens": estimate.input_tokens,
            "outputTokens": estimate.output_tokens,
            "costUSD": pricing.format_usd(estimate.cost_usd),
            "durationSeconds": estimate.duration_seconds,
            "tokensExact": estimate.tokens_exact,
        }
    return numbers


def _submitted(latest: RunView | None, waiting: verdicts.Verdict | None) -> verdicts.Verdict:
    if latest is None:
        return waiting or verdicts.Verdict("Unknown", "Pending", "no run has been submitted yet")
    return verdicts.Verdict("True", "JobCreated", f"run {latest.name} was submitted")


def _estimated(found: progress.Progress | None) -> verdicts.Verdict:
    if found is None or found.estimate is None:
        return verdicts.Verdict("Unknown", "Estimating", "the run has not estimated its cost yet")
    estimate = found.estimate
    how = "" if estimate.tokens_exact else " (tokens approximated)"
    return verdicts.Verdict(
        "True",
        "Estimated",
        f"{estimate.records:,} records, {estimate.input_tokens:,} input tokens{how}, at most "
        f"${pricing.format_usd(estimate.cost_usd)}, about {estimate.duration_seconds:,} s",
    )


def _succeeded(latest: RunView | None, waiting: verdicts.Verdict | None) -> verdicts.Verdict:
    if latest is None or (waiting is not None and not latest.finished):
        return waiting or verdicts.Verdict("Unknown", "Pending", "no run has started yet")
    status: Any = {"Succeeded": "True", "Failed": "False"}.get(latest.state, "Unknown")
    return verdicts.Verdict(status, latest.reason, f"run {latest.name}: {latest.message}")


def _notified(latest: RunView | None, observed: Observed) -> verdicts.Verdict:
    finished = [run for run in observed.runs if run.finished]
    if not finished:
        return verdicts.Verdict("Unknown", "NoRunFinished", "no run has finished yet")
    last = finished[-1]
    if observed.notified.get(last.name):
        return verdicts.Verdict("True", "Delivered", f"the notice of run {last.name} was delivered")
    return verdicts.Verdict(
        "False", "WebhookFailing",
        f"the notice of run {last.name} was not delivered: {observed.notify_error or 'pending'}",
    )  # fmt: skip


def _state(latest: RunView | None, waiting: verdicts.Verdict | None) -> str:
    if waiting is not None and waiting.reason == "Suspended":
        return "Suspended"
    if latest is None:
        return "Pending"
    return latest.state


def _run_record(run: RunView, observed: Observed) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": run.name,
        "state": run.state,
        "reason": run.reason,
        "scheduledTime": _stamp(run.scheduled_time),
        "startTime": _stamp(run.start_time),
        "completionTime": _stamp(run.completion_time),
        "outputURI": run.output_uri,
        "notified": bool(observed.notified.get(run.name)),
        "databricks": None if run.databricks is None else dict(run.databricks),
    }
    if run.progress is not None:
        record["records"] = run.progress.total
        record["failed"] = run.progress.failed
        record["costUSD"] = pricing.format_usd(run.progress.cost_usd)
    return {key: value for key, value in record.items() if value is not None}


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def suspended() -> verdicts.Verdict:
    return verdicts.Verdict(
        "Unknown",
        "Suspended",
        "spec.suspend is true: no run goes; results so far are kept, and false again resumes",
    )


PREVIOUS_RUN_DELETING = "PreviousRunDeleting"


def previous_run_deleting(why: str) -> verdicts.Verdict:
    """No run yet: a child's name (its config's, its stats Redis's, its run's Job's) is still
    held by the child of the BatchJob of this name that was deleted before this one was created
    (a re-run), which Kubernetes is deleting; `why` names it."""
    return verdicts.Verdict(
        "Unknown", PREVIOUS_RUN_DELETING, f"waiting: {why}; this run starts once it is gone"
    )


def recorded_run(body: Mapping[str, Any], name: str) -> RunView | None:
    """A finished run as status recorded it (its Job, or its Databricks run, may be gone)."""
    for run in body.get("status", {}).get("runs") or []:
        if run.get("name") == name and run.get("state") in TERMINAL:
            return RunView(
                name=name,
                state=run["state"],
                reason=run.get("reason", ""),
                message="as recorded when it finished",
                scheduled_time=parse_time(run.get("scheduledTime")),
                start_time=parse_time(run.get("startTime")),
                completion_time=parse_time(run.get("completionTime")),
                output_uri=run.get("outputURI"),
                databricks=run.get("databricks"),
            )
    return None
