"""Reconciles BatchJob: the batch job's config, a Kubernetes Job per run (once, or per
scheduled time with a CronJob's semantics), each run's progress and cost from what its batch job
publishes, history, and a completion notice (an Event, and a webhook when asked).

`engine: databricks` runs its one run as a Databricks run instead (`batch_databricks`), with the
same config, progress, status and notice; deleting such a BatchJob cancels its run.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import os
from collections.abc import Mapping
from typing import Any

import kopf
import pydantic

from tiers.api import batch, kinds, realtime
from tiers.operator import (
    batch_databricks,
    batch_runs,
    batch_status,
    caller_keys,
    egress,
    kube,
    metrics,
    notify,
    ownership,
    rechecks,
    reconciliation,
    schedule,
    stats_reader,
    triggers,
    verdicts,
)
from tiers.operator.manifests import (
    batch_children,
    labels,
    network_policies,
    realtime_children,
    redis,
    spark_application,
    stats_store,
    telemetry,
)

KIND = kinds.BATCH_JOB
DEFAULT_TELEMETRY = telemetry.default_from(os.environ)
"""The chart's `telemetry.*`, for jobs whose spec names no collector."""
CANCEL_TIMEOUT_S = float(os.environ.get("TIERS_DATABRICKS_CANCEL_TIMEOUT_SECONDS", "120"))
WEBHOOK_ATTEMPTS = 3
"""Tries per reconcile; a notice not delivered is tried again at the next one."""
WEBHOOK_ALLOWED_NETWORKS = egress.allowed_networks()
"""Non-public networks that notices may go to (chart value notifications.allowedNetworks)."""


@dataclasses.dataclass
class Plan:
    """What a reconcile found and did, for the status."""

    jobs: dict[str, dict[str, Any]]
    waiting: verdicts.Verdict | None = None
    next_run: datetime.datetime | None = None
    last_schedule_time: datetime.datetime | None = None


@triggers.reconciler(KIND)
async def reconcile_batch_job(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    with metrics.reconciling(KIND.kind):
        spec = reconciliation.parse_spec(KIND, batch.BatchJobSpec, body, patch)
        if spec is None:
            return
        if reconciliation.refused_to_run(
            KIND, body, patch, image=spec.spark.image, call=spec.model
        ):
            return
        now = reconciliation.now()
        if spec.engine == "databricks":
            await reconcile_on_databricks(spec, body, patch, now=now)
            return
        owner = reconciliation.owner_of(KIND, body)
        try:
            timing = _timing(spec)
        except ValueError as error:
            invalid = verdicts.Verdict("False", reconciliation.INVALID_SPEC, str(error))
            reconciliation.write_status(
                patch, body, verdicts.stamp(body, {"Succeeded": invalid}, now=now)
            )
            return
        stats_url = stats_reader.stats_url(default_stats_url(owner))
        try:
            plan = await apply_runs(owner, spec, body, timing, stats_url=stats_url, now=now)
        except (ownership.ChildConflict, kube.SecretNotOurs) as error:
            plan = Plan(jobs={}, waiting=_child_conflict(body, error))
        where = await stats_reader.target(
            stats_store.managed(owner, batch_children.STATS), owner.namespace
        )
        views, unavailable = await observe_runs(owner, spec, body, plan, where=where)
        notified, notify_error = await send_notices(owner, spec, body, views)
        observed = batch_status.Observed(
            runs=views,
            waiting=plan.waiting,
            next_run=plan.next_run,
            last_schedule_time=plan.last_schedule_time,
            notified=notified,
            notify_error=notify_error,
            stats_unavailable=unavailable,
        )
        desired = batch_status.desired_status(observed, spec=spec, body=body, now=now)
        reconciliation.write_status(patch, body, desired)


async def reconcile_on_databricks(
    spec: batch.BatchJobSpec, body: kopf.Body, patch: kopf.Patch, *, now: datetime.datetime
) -> None:
    """`engine: databricks`: the same config, stats Redis, status and notices as the spark
    engine; the run is a Databricks run (`batch_databricks`)."""
    owner = reconciliation.owner_of(KIND, body)
    if spec.schedule is not None:
        refused = verdicts.Verdict(
            "False", "NotSupported",
            "spec.schedule with engine databricks is not run by this operator version: remove "
            "the schedule (a one-off run), or use engine spark",
        )  # fmt: skip
        reconciliation.write_status(
            patch, body, verdicts.stamp(body, {"Succeeded": refused}, now=now)
        )
        return
    stats_url = stats_reader.stats_url(default_stats_url(owner))
    views: list[batch_status.RunView] = []
    unavailable = False
    try:
        configmap, waiting = await _render_config(owner, spec, body, stats_url=stats_url)
    except (ownership.ChildConflict, kube.SecretNotOurs) as error:
        configmap, waiting = None, _child_conflict(body, error)
    if configmap is not None:
        where = await stats_reader.target(
            stats_store.managed(owner, batch_children.STATS), owner.namespace
        )
        outcome = await batch_databricks.reconcile(owner, spec, body, configmap, where=where)
        waiting, unavailable = outcome.waiting, outcome.stats_unavailable
        views = [] if outcome.view is None else [outcome.view]
    notified, notify_error = await send_notices(owner, spec, body, views)
    observed = batch_status.Observed(
        runs=views, waiting=waiting, notified=notified, notify_error=notify_error,
        stats_unavailable=unavailable,
    )  # fmt: skip
    desired = batch_status.desired_status(observed, spec=spec, body=body, now=now)
    reconciliation.write_status(patch, body, desired)


def runs_on_databricks(spec: kopf.Spec, **_: Any) -> bool:
    """Whether the BatchJob may have a Databricks run to cancel when it goes: kopf puts its
    finalizer on such BatchJobs only."""
    return spec.get("engine") == "databricks"


@kopf.on.delete(kinds.GROUP, kinds.VERSION, KIND.plural, when=runs_on_databricks)
async def delete_batch_job(body: kopf.Body, runtime: datetime.timedelta, **_: Any) -> None:
    """Cancels the Databricks run of a BatchJob being deleted (its results so far stay). While
    the workspace does not answer it retries for `CANCEL_TIMEOUT_S`, then lets the BatchJob go
    with a Warning Event naming the run left going."""
    try:
        spec = batch.BatchJobSpec.model_validate(body.get("spec", {}))
    except pydantic.ValidationError:
        return
    async with rechecks.exclusively(KIND, body) as current:
        failure = await batch_databricks.cancel_on_delete(spec, current)
    if failure is None:
        return
    left = CANCEL_TIMEOUT_S - runtime.total_seconds()
    if left > 0:
        raise kopf.TemporaryError(
            f"cancelling the Databricks run failed ({failure}); retrying for {int(left)} s",
            delay=min(10.0, max(1.0, left)),
        )
    kopf.event(
        body, type="Warning", reason="RunLeftGoing",
        message=f"gave up cancelling the Databricks run after {int(runtime.total_seconds())} s "
        f"({failure}): cancel it in the workspace",
    )  # fmt: skip


def _timing(spec: batch.BatchJobSpec) -> tuple[schedule.Cron, datetime.tzinfo] | None:
    """The schedule and its time zone; ValueError naming the field when CEL let a bad one in."""
    if spec.schedule is None:
        return None
    try:
        return schedule.parse(spec.schedule), schedule.parse_time_zone(spec.time_zone)
    except ValueError as error:
        raise ValueError(f"spec.schedule or spec.timeZone: {error}") from None


def default_stats_url(owner: labels.Owner) -> str:
    """Where the batch job publishes progress and stats: the BatchJob's own Redis, however it
    calls its model."""
    return redis.url(owner, batch_children.STATS)


async def apply_runs(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: kopf.Body,
    timing: tuple[schedule.Cron, datetime.tzinfo] | None,
    *,
    stats_url: str | None,
    now: datetime.datetime,
) -> Plan:
    """Applies the config, then starts, stops and prunes runs as the spec and schedule say."""
    configmap, waiting = await _render_config(owner, spec, body, stats_url=stats_url)
    try:
        owned = await batch_runs.owned_runs(
            owner, spark_operator=spec.spark.mode == "spark-operator"
        )
    except kube.TypeNotServed:
        return Plan(jobs={}, waiting=_spark_operator_missing(owner.namespace))
    plan = Plan(jobs={job["metadata"]["name"]: job for job in owned})
    if timing is None:
        plan.waiting = waiting or await _run_once(owner, spec, body, plan, configmap)
        return plan
    cron, tz = timing
    decision = schedule.decide(
        cron=cron,
        tz=tz,
        now=now,
        last_scheduled=batch_status.parse_time(body.get("status", {}).get("lastScheduleTime")),
        created=batch_status.parse_time(body["metadata"]["creationTimestamp"]) or now,
        active_runs=[_run_ref(job) for job in plan.jobs.values() if _job_state(job) == "Active"],
        suspend=spec.suspend,
        concurrency_policy=spec.concurrency_policy,
        starting_deadline_seconds=spec.starting_deadline_seconds,
    )
    for stopping in decision.stop:
        _record(
            body,
            await batch_runs.stop(plan.jobs.get(stopping.name), stopping.name, owner.namespace),
        )
        plan.jobs.pop(stopping.name, None)
    if decision.start is not None and waiting is None and configmap is not None:
        name = schedule.run_name(owner.name, decision.start)
        job = batch_children.render_run(
            owner, spec, configmap, run=name, image=reconciliation.IMAGE,
            scheduled_time=decision.start.isoformat(),
        )  # fmt: skip
        _record(body, await batch_runs.create(job))
        plan.jobs[name] = job
        for event in decision.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    plan.last_schedule_time = decision.last_scheduled
    plan.next_run = decision.next_run
    _, removed = schedule.prune_history(
        [_run_ref(job) for job in plan.jobs.values()],
        successful_limit=spec.successful_runs_history_limit,
        failed_limit=spec.failed_runs_history_limit,
    )
    for old in removed:
        _record(body, await batch_runs.stop(plan.jobs.get(old.name), old.name, owner.namespace))
        plan.jobs.pop(old.name, None)
    if spec.suspend:
        plan.waiting = batch_status.suspended()
    elif waiting is not None:
        plan.waiting = waiting
    elif not plan.jobs and decision.next_run is not None:
        plan.waiting = verdicts.Verdict(
            "Unknown", "Scheduled", f"the first run is due at {_stamp(decision.next_run)}"
        )
    return plan


async def _render_config(
    owner: labels.Owner, spec: batch.BatchJobSpec, body: kopf.Body, *, stats_url: str | None
) -> tuple[dict[str, Any] | None, verdicts.Verdict | None]:
    """Applies the batch job's ConfigMap and stats Redis (each change an Event on the BatchJob);
    or why there is none to run with."""
    endpoint_model = None
    endpoint_tls = False
    outside_url = None
    ref = spec.model.endpoint_ref
    if ref is not None:
        endpoint = await kube.realtime_endpoint_spec(ref.name, owner.namespace)
        if endpoint is None:
            return None, verdicts.Verdict(
                "False",
                "EndpointNotFound",
                f"RealtimeEndpoint {ref.name}, named by spec.model.endpointRef, does not exist",
            )
        endpoint_model = str(endpoint.get("model"))
        endpoint_tls = endpoint.get("tls") is not None
        outside_url = _outside_url(endpoint)
    settings = batch_children.job_config(
        owner,
        spec,
        stats_redis_url=stats_url,
        endpoint_model=endpoint_model,
        endpoint_tls=endpoint_tls,
        endpoint_outside_url=outside_url,
        default_telemetry=DEFAULT_TELEMETRY,
    )
    configmap = batch_children.render_config_map(owner, spec, settings)
    # Created once, then only read: a new password would lock a running job out.
    made = redis.render_password_secret(owner, redis.new_password(), component=batch_children.STATS)
    password = (await kube.generated_secret(made)).get(redis.PASSWORD_KEY)
    if ref is not None:
        # A key of its own for the endpoint, let in at once rather than at its next turn.
        await caller_keys.ensure_key(owner)
        await caller_keys.sync(ref.name, owner.namespace)
    network_policy = network_policies.settings_from(os.environ)
    stats = batch_children.render_stats_redis(
        owner, password=password, network_policy=network_policy
    )
    changes = await kube.apply_all([configmap, *stats])
    # The stats Redis's NetworkPolicy goes when the admin turns network policies off.
    policy = (network_policies.API_VERSION, network_policies.KIND, batch_children.STATS.name(owner))
    changes += await kube.delete_unlisted(stats, reconciliation.possible_leftovers(body, [policy]))
    reconciliation.record_changes(body, changes)
    return configmap, None


def _outside_url(endpoint: Mapping[str, Any]) -> str | None:
    """Where clients outside the cluster call an endpoint (its `spec.expose` host), if anywhere."""
    try:
        found = realtime.RealtimeEndpointSpec.model_validate(endpoint)
    except pydantic.ValidationError:
        return None  # stored under an older schema: its in-cluster URL, as before
    return realtime_children.external_gateway_url(found)


def _child_conflict(
    body: kopf.Body, error: ownership.ChildConflict | kube.SecretNotOurs
) -> verdicts.Verdict:
    """A child's name not held: a re-run's waits for the old run's children to go."""
    return reconciliation.child_conflict(
        KIND, body, error, waiting=batch_status.previous_run_deleting
    )


def _record(body: kopf.Body, change: kube.Change | None) -> None:
    """A run the handler started or stopped, as a Normal Event on the BatchJob."""
    if change is not None:
        reconciliation.record_changes(body, [change])


async def _run_once(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: kopf.Body,
    plan: Plan,
    configmap: dict[str, Any] | None,
) -> verdicts.Verdict | None:
    """A one-off job's single run: started once, stopped by suspend, resumed by unsuspending.
    Once it has finished it is not started again (delete and recreate the BatchJob to rerun:
    the new run scores only what has no good result yet)."""
    name = batch_children.one_off_run_name(owner)
    job = plan.jobs.get(name)
    if spec.suspend:
        if job is not None and _job_state(job) == "Active":
            _record(body, await batch_runs.stop(job, name, owner.namespace))
            plan.jobs.pop(name)
        return batch_status.suspended()
    if job is None and not _finished_before(body, name) and configmap is not None:
        job = batch_children.render_run(
            owner, spec, configmap, run=name, image=reconciliation.IMAGE
        )
        _record(body, await batch_runs.create(job))
        plan.jobs[name] = job
    return None


async def observe_runs(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: Mapping[str, Any],
    plan: Plan,
    *,
    where: stats_reader.Target | None,
) -> tuple[list[batch_status.RunView], bool]:
    """Every run's view, oldest first: from its Job and its progress, or for a finished run whose
    Job is gone, from what status recorded of it; and whether the stats Redis failed to answer."""
    subject = f"{owner.namespace}/{owner.name}"
    views = []
    unavailable = False
    for name, job in plan.jobs.items():
        try:
            found = await batch_runs.read_progress(where, subject, name)
        except batch_runs.ProgressUnavailable:
            found, unavailable = None, True
        views.append(
            batch_status.run_view(
                name,
                job.get("status"),
                found,
                scheduled_time=batch_runs.scheduled_time(job),
                output_uri=batch_children.run_output_uri(spec, name),
                dry_run=spec.dry_run,
            )
        )
    if spec.schedule is None and not plan.jobs:
        recorded = batch_status.recorded_run(body, batch_children.one_off_run_name(owner))
        if recorded is not None:
            views.append(recorded)
    return sorted(views, key=lambda view: (view.scheduled_time or _EPOCH, view.name)), unavailable


async def send_notices(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: kopf.Body,
    views: list[batch_status.RunView],
) -> tuple[dict[str, bool], str | None]:
    """The completion notice of each run that finished since the last reconcile: an Event, and
    the webhook when one is set (tried again next time until it is delivered)."""
    recorded = {run.get("name"): run for run in body.get("status", {}).get("runs") or []}
    notified: dict[str, bool] = {}
    error = None
    for view in views:
        before = recorded.get(view.name) or {}
        if before.get("notified") or not view.finished:
            notified[view.name] = bool(before.get("notified"))
            continue
        notice = _notice(owner, view)
        if before.get("state") not in batch_status.TERMINAL:
            type_, reason, message = notify.event_message(notice)
            kopf.event(body, type=type_, reason=reason, message=message)
        if spec.notification is None:
            notified[view.name] = True
            continue
        secret = await _signing_secret(spec.notification, owner.namespace)
        result = await notify.deliver(
            spec.notification.webhook_url, notice, secret=secret, attempts=WEBHOOK_ATTEMPTS,
            max_backoff_s=5.0, allowed=WEBHOOK_ALLOWED_NETWORKS,
        )  # fmt: skip
        notified[view.name] = result.delivered
        if not result.delivered:
            error = result.last_error
    return notified, error


def _notice(owner: labels.Owner, view: batch_status.RunView) -> notify.Notice:
    found = view.progress
    duration = 0
    if view.start_time is not None and view.completion_time is not None:
        duration = int((view.completion_time - view.start_time).total_seconds())
    return notify.Notice(
        name=owner.name,
        namespace=owner.namespace,
        run=view.name,
        state="Succeeded" if view.state == "Succeeded" else "Failed",
        records=(found.total or 0) if found is not None else 0,
        failed=found.failed if found is not None else 0,
        cost_usd=found.cost_usd if found is not None else decimal.Decimal(0),
        duration_seconds=max(duration, 0),
        output_uri=view.output_uri or "",
    )


async def _signing_secret(notification: batch.Notification, namespace: str) -> bytes | None:
    ref = notification.signing_secret_ref
    if ref is None:
        return None
    value = await kube.secret_value(ref.name, ref.key, namespace)
    return None if value is None else value.encode()


def _spark_operator_missing(namespace: str) -> verdicts.Verdict:
    return verdicts.Verdict(
        "False",
        "SparkOperatorMissing",
        f"spec.spark.mode is spark-operator, but the cluster serves no "
        f"{spark_application.CRD_NAME} (v1beta2): install the Kubeflow Spark Operator with its "
        f"Helm chart (chart spark-operator, --set 'spark.jobNamespaces={{{namespace}}}'), or "
        "set spec.spark.mode to local",
    )


def _job_state(job: Mapping[str, Any]) -> schedule.RunState:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "Succeeded"
        if condition.get("type") == "Failed":
            return "Failed"
    return "Active"


def _run_ref(job: Mapping[str, Any]) -> schedule.RunRef:
    scheduled = batch_runs.scheduled_time(dict(job)) or _EPOCH
    return schedule.RunRef(job["metadata"]["name"], scheduled, _job_state(job))


def _finished_before(body: Mapping[str, Any], name: str) -> bool:
    return batch_status.recorded_run(body, name) is not None


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
