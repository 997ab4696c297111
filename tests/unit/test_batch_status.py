"""A BatchJob's status from its runs' Jobs and progress: pure, no cluster."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from tiers.api import batch
from tiers.operator import batch_status, verdicts
from tiers.runtime.batch import progress

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)
SPEC = batch.BatchJobSpec.model_validate(
    {
        "engine": "spark",
        "input": {"uri": "file:///in"},
        "output": {"uri": "file:///out"},
        "model": {"endpointRef": {"name": "chat"}, "prompt": "{text}"},
    }
)


def found(state: progress.State = "Running", **changes: Any) -> progress.Progress:
    estimate = progress.Estimate(
        records=1000, input_tokens=20000, output_tokens=16000,
        cost_usd=decimal.Decimal("0.0126"), duration_seconds=40, tokens_exact=True,
    )  # fmt: skip
    base = progress.Progress.starting(
        state=state, attempt=1, total=1000, skipped=0, skipped_cost_usd=decimal.Decimal(0),
        now_s=NOW.timestamp() - 10, estimate=estimate,
    )  # fmt: skip
    fields = {**base.__dict__, "done": 400, "failed": 2, "cost_usd": decimal.Decimal("0.004"),
              "updated_s": NOW.timestamp(), **changes}  # fmt: skip
    return progress.Progress(**fields)


def job_status(condition: str | None = None, message: str = "", **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2026-11-29T11:59:00Z", **extra}
    if condition is None:
        status["active"] = 1
    else:
        status["conditions"] = [
            {"type": condition, "status": "True", "reason": "BackoffLimitExceeded",
             "message": message},
        ]  # fmt: skip
        status["completionTime"] = "2026-11-29T12:00:00Z"
    return status


def status_of(*views: batch_status.RunView, **observed: Any) -> dict[str, Any]:
    return batch_status.desired_status(
        batch_status.Observed(runs=views, **observed), spec=SPEC, body={}, now=NOW
    )


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def view(job: dict[str, Any] | None, progress_: progress.Progress | None) -> batch_status.RunView:
    return batch_status.run_view(
        "triage-run", job, progress_, scheduled_time=None, output_uri="file:///out"
    )


def test_a_running_run_shows_progress_cost_and_its_estimate() -> None:
    status = status_of(view(job_status(), found()))
    assert status["state"] == "Running"
    assert condition(status, "Succeeded")["status"] == "Unknown"
    assert "40% (402 of 1,000), 40 records/s" in condition(status, "Succeeded")["message"]
    assert status["progress"] == {
        "total": 1000, "done": 400, "failed": 2, "percent": 40, "recordsPerSecond": 40,
        "window": "run", "observedAt": "2026-11-29T12:00:00Z", "stale": False,
    }  # fmt: skip
    assert status["cost"]["totalUSD"] == "0.004000"
    assert (status["cost"]["window"], status["cost"]["stale"]) == ("run", False)
    assert status["cost"]["estimateUSD"] == "0.012600"
    assert status["estimate"]["inputTokens"] == 20000
    assert condition(status, "Estimated")["status"] == "True"
    assert condition(status, "Submitted")["reason"] == "JobCreated"


def test_a_completed_job_is_a_succeeded_run_with_its_numbers() -> None:
    status = status_of(view(job_status("Complete"), found("Succeeded", done=1000, failed=0)))
    assert status["state"] == "Succeeded"
    assert condition(status, "Succeeded")["status"] == "True"
    assert status["durationSeconds"] == 60
    assert status["lastRun"]["records"] == 1000
    assert status["completionTime"] == "2026-11-29T12:00:00Z"


def test_a_job_failed_by_its_budget_says_so() -> None:
    spent = found("BudgetSpent", message="the run has spent $1.000000, its budget is $1.000000")
    status = status_of(
        view(job_status("Failed", "failed with exit code 4 matching FailJob"), spent)
    )
    assert status["state"] == "Failed"
    verdict = condition(status, "Succeeded")
    assert (verdict["status"], verdict["reason"]) == ("False", "BudgetSpent")
    assert "its budget is $1.000000" in verdict["message"]


def test_the_exit_code_alone_tells_a_refused_run_when_no_progress_came_back() -> None:
    status = status_of(view(job_status("Failed", "Container batch exited with exit code 3"), None))
    assert condition(status, "Succeeded")["reason"] == "OverBudget"


def test_other_failures_keep_the_jobs_reason() -> None:
    status = status_of(view(job_status("Failed", "Job has reached the backoff limit"), None))
    assert condition(status, "Succeeded")["reason"] == "BackoffLimitExceeded"


def test_no_run_yet_shows_why() -> None:
    waiting = verdicts.Verdict("Unknown", "Scheduled", "the first run is due at X")
    status = status_of(waiting=waiting)
    assert status["state"] == "Pending"
    assert condition(status, "Succeeded")["reason"] == "Scheduled"


def test_a_suspended_job_says_suspended_and_keeps_its_last_run() -> None:
    suspended = verdicts.Verdict("Unknown", "Suspended", "spec.suspend is true")
    status = status_of(view(job_status("Complete"), None), waiting=suspended)
    assert status["state"] == "Suspended"
    assert condition(status, "Succeeded")["status"] == "True"


def test_a_spark_applications_state_reads_as_the_job_status_it_amounts_to() -> None:
    def app(state: str, **status: str) -> dict[str, Any]:
        return {"status": {"applicationState": {"state": state, "errorMessage": "OOMKilled"},
                           "lastSubmissionAttemptTime": "2026-11-29T11:59:00Z", **status}}  # fmt: skip

    done = batch_status.job_status_of(app("COMPLETED", terminationTime="2026-11-29T12:00:00Z"))
    assert view(done, None).state == "Succeeded"
    assert view(done, None).completion_time == NOW
    failed = view(batch_status.job_status_of(app("FAILED")), None)
    assert (failed.state, failed.message) == ("Failed", "OOMKilled")
    assert view(batch_status.job_status_of(app("RUNNING")), None).state == "Running"
    assert view(batch_status.job_status_of({}), None).state == "Pending"


def test_a_running_run_whose_progress_stopped_coming_shows_its_figures_as_stale() -> None:
    quiet = NOW.timestamp() - progress.STALE_AFTER_INTERVALS * progress.PUBLISH_INTERVAL_S - 1
    status = status_of(view(job_status(), found(updated_s=quiet)))
    assert status["progress"]["stale"] is True and status["cost"]["stale"] is True
    assert status["progress"]["done"] == 400, "the last figures, as published"
    recent = status_of(view(job_status(), found(updated_s=quiet + 2)))
    assert recent["progress"]["stale"] is False


def test_a_job_that_publishes_less_often_is_not_taken_for_a_stuck_one() -> None:
    every_10_s = {"interval_s": 10.0}
    last_published = NOW.timestamp() - 45  # stale at the default interval, not at this one
    fresh = status_of(view(job_status(), found(updated_s=last_published, **every_10_s)))
    assert fresh["progress"]["stale"] is False and fresh["cost"]["stale"] is False
    gone_quiet = NOW.timestamp() - progress.STALE_AFTER_INTERVALS * 10 - 1
    stuck = status_of(view(job_status(), found(updated_s=gone_quiet, **every_10_s)))
    assert stuck["progress"]["stale"] is True and stuck["cost"]["stale"] is True


def test_a_finished_runs_figures_are_final_not_stale_however_old() -> None:
    long_ago = NOW.timestamp() - 86400
    done = found("Succeeded", updated_s=long_ago, done=1000, failed=0)
    status = status_of(view(job_status("Complete"), done))
    assert status["progress"]["stale"] is False and status["cost"]["stale"] is False


def test_an_unreachable_stats_store_keeps_the_last_figures_marked_stale() -> None:
    before = status_of(view(job_status(), found()))
    body = {"status": before}
    after = batch_status.desired_status(
        batch_status.Observed(runs=[view(job_status(), None)], stats_unavailable=True),
        spec=SPEC, body=body, now=NOW + datetime.timedelta(minutes=1),
    )  # fmt: skip
    assert after["progress"] == {**before["progress"], "stale": True}
    assert after["cost"] == {**before["cost"], "stale": True}
    assert after["estimate"] == before["estimate"]
    answered = batch_status.desired_status(
        batch_status.Observed(runs=[view(job_status(), None)]), spec=SPEC, body={"status": after},
        now=NOW + datetime.timedelta(minutes=2),
    )  # fmt: skip
    assert answered["progress"]["stale"] is False, "it answered: no progress yet is not stale"
