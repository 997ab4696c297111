"""A BatchJob's run on Databricks (`engine: databricks`): submitted, polled at each reconcile
(the periodic re-check, `rechecks`), retried, cancelled for `spec.suspend` and on delete.

Each attempt is claimed in status before it is submitted, and its run id goes there as soon
as Databricks answers, before it is ever polled. An operator that dies in between finds the run
again by its name, or submits again with the same idempotency token and gets the same run back
(`databricks_requests.idempotency_token`); a BatchJob deleted in between has that run cancelled.
What to do is `databricks_status.next_step`'s decision; what to ask is `databricks_requests`';
the calls are `databricks_client`'s. A workspace that refuses the token or does not answer is a
condition, tried again at the next re-check.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from tiers.api import batch, kinds
from tiers.operator import (
    azure_workspaces,
    batch_runs,
    batch_status,
    databricks_client,
    databricks_requests,
    databricks_status,
    egress,
    kube,
    rechecks,
    stats_reader,
    verdicts,
)
from tiers.operator.manifests import batch_children, labels, stats_store
from tiers.runtime.batch import config, progress

log = logging.getLogger(__name__)
ALLOWED_NETWORKS = egress.allowed_networks()
"""Non-public networks a workspace host may be in: the notices' list (chart value
notifications.allowedNetworks), the one list of where the operator may call on a spec's say."""


@dataclasses.dataclass
class Outcome:
    """The run's view (None: no run yet) and why nothing is going, when so."""

    view: batch_status.RunView | None = None
    waiting: verdicts.Verdict | None = None
    stats_unavailable: bool = False
    """The stats Redis did not answer (the run's progress was not read)."""


async def reconcile(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: Mapping[str, Any],
    configmap: dict[str, Any],
    *,
    where: stats_reader.Target | None,
) -> Outcome:
    name = batch_children.one_off_run_name(owner)
    unavailable = False
    try:
        found = await batch_runs.read_progress(where, f"{owner.namespace}/{owner.name}", name)
    except batch_runs.ProgressUnavailable:
        found, unavailable = None, True
    outcome = await _reconcile(owner, spec, body, configmap, name=name, found=found)
    return dataclasses.replace(outcome, stats_unavailable=unavailable)


async def _reconcile(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: Mapping[str, Any],
    configmap: dict[str, Any],
    *,
    name: str,
    found: progress.Progress | None,
) -> Outcome:
    record = recorded_attempt(body, name)
    output_uri = batch_children.run_output_uri(spec, name)

    def view_of(
        attempt: batch.DatabricksRun, observed: databricks_status.Observed | None
    ) -> batch_status.RunView:
        return databricks_status.run_view(
            name, attempt, observed, found, output_uri=output_uri, dry_run=spec.dry_run
        )

    finished = batch_status.recorded_run(body, name)
    if finished is not None:
        return Outcome(view=finished)
    at_rest = record is None or (record.stopped and not databricks_status.stopping(record))
    if spec.suspend and at_rest:
        # Nothing goes, so nothing to ask the workspace.
        view = None if record is None else view_of(record, None)
        return Outcome(view=view, waiting=batch_status.suspended())
    settings = spec.databricks
    assert settings is not None, "the CRD requires spec.databricks with engine databricks"
    token = await kube.secret_value(
        settings.token_secret_ref.name, settings.token_secret_ref.key, owner.namespace
    )
    if token is None:
        ref = settings.token_secret_ref
        missing = verdicts.Verdict(
            "False", "SecretNotFound",
            f"the Secret {ref.name} named by spec.databricks.tokenSecretRef has no key {ref.key}",
        )  # fmt: skip
        return Outcome(view=None if record is None else view_of(record, None), waiting=missing)
    host = await workspace_host(settings, owner.namespace)
    if isinstance(host, verdicts.Verdict):
        return Outcome(view=None if record is None else view_of(record, None), waiting=host)
    space = workspace(settings, host, token)
    try:
        if record is not None and record.run_id is None:
            record = await _found_again(space, owner, name, record, body)
        observed = None
        if (
            record is not None
            and record.run_id is not None
            and (not record.stopped or databricks_status.stopping(record))
        ):
            observed = databricks_status.observe(await space.get_run(record.run_id))
            record = databricks_status.recorded(record, observed)
            if found is None and observed.finished and observed.task_run_id is not None:
                found = await _final_numbers(space, observed.task_run_id)
        view = view_of(record, observed) if record is not None else None
        step = databricks_status.next_step(
            record, observed, view.reason if view is not None else "",
            suspend=spec.suspend, backoff_limit=spec.backoff_limit,
        )  # fmt: skip
        if step.cancel and record is not None and record.run_id is not None:
            await space.cancel(record.run_id)
            record = record.model_copy(update={"stopped": True})
            view = view_of(record, observed)
        if step.submit is not None:
            request = await _prepared(space, owner, spec, body, configmap, name, step.submit)
            record = batch.DatabricksRun(attempt=step.submit, failures=step.failures)
            await _write_attempt(owner, name, record, "Submitting")
            run_id = await space.submit(request)
            log.info("%s/%s: run %s attempt %d is Databricks run %d",
                     owner.namespace, owner.name, name, step.submit, run_id)  # fmt: skip
            record = record.model_copy(update={"run_id": run_id})
            await _write_attempt(owner, name, record, "Submitted")
            observed = databricks_status.observe(await space.get_run(run_id))
            record = databricks_status.recorded(record, observed)
            view = view_of(record, observed)
    except databricks_client.Refused as error:
        return Outcome(
            view=None if record is None else view_of(record, None),
            waiting=verdicts.Verdict("False", "DatabricksAuthFailed", f"{error}; tried again "
                                     "at the next re-check (spec.databricks.tokenSecretRef)"),
        )  # fmt: skip
    except databricks_client.HostNotAllowed as error:
        return Outcome(
            view=None if record is None else view_of(record, None),
            waiting=verdicts.Verdict("False", "HostNotAllowed", str(error)),
        )
    except databricks_client.Failure as error:
        return Outcome(
            view=None if record is None else view_of(record, None),
            waiting=verdicts.Verdict(
                "Unknown", "DatabricksUnavailable", f"{error}; tried again at the next re-check"
            ),
        )
    if spec.suspend and record is not None and databricks_status.stopping(record):
        return Outcome(view=view, waiting=databricks_status.cancelling(record))
    if spec.suspend:
        return Outcome(view=view, waiting=batch_status.suspended())
    return Outcome(view=view)


async def _final_numbers(
    space: databricks_client.Workspace, task_run_id: int
) -> progress.Progress | None:
    """A finished run's numbers from its output's summary line, where its progress never
    reached the stats Redis (a Databricks cluster outside this cluster's network)."""
    try:
        return progress.from_summary(await space.output_logs(task_run_id))
    except databricks_client.Failure as error:
        log.info("the output of Databricks run %d is unavailable: %s", task_run_id, error)
        return None


async def _prepared(
    space: databricks_client.Workspace,
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    body: Mapping[str, Any],
    configmap: dict[str, Any],
    name: str,
    attempt: int,
) -> dict[str, Any]:
    """Uploads the launcher and copies the keys into the secret scope: the attempt's submit
    request, ready to send."""
    settings = spec.databricks
    assert settings is not None
    env = batch_children.run_env(owner, spec)
    if stats_reader.stats_url(None) is not None:
        # Local mode: the stats Redis is the dev one, which has no password.
        env = [entry for entry in env if entry["name"] != stats_store.PASSWORD_ENV]
    secrets = databricks_requests.secret_envs(owner, env)
    values = {}
    for entry in env:
        ref = entry["valueFrom"]["secretKeyRef"]
        value = await kube.secret_value(ref["name"], ref["key"], owner.namespace)
        if value is not None and entry["name"] in secrets:
            values[secrets[entry["name"]]] = value
    if values:
        await space.put_secrets(settings.secret_scope, values)
    await space.upload(databricks_requests.launcher_path(settings), databricks_requests.LAUNCHER)
    command = "estimate" if spec.dry_run else "run"
    return databricks_requests.submit_request(
        owner, spec, settings_of(configmap),
        run=name, attempt=attempt,
        arguments=[command, "--run", name, "--output", batch_children.run_output_uri(spec, name)],
        secrets={env_name: key for env_name, key in secrets.items() if key in values},
        token=databricks_requests.idempotency_token(
            owner.uid, int(body["metadata"].get("generation") or 0), name, attempt
        ),
    )  # fmt: skip


async def _write_attempt(
    owner: labels.Owner, name: str, record: batch.DatabricksRun, reason: str
) -> None:
    """The attempt into status at once, not at the reconcile's end: claimed before it is
    submitted, with its run id as soon as it has one."""
    await rechecks.write_status(
        kinds.BATCH_JOB, owner.name, owner.namespace,
        {"runs": [{"name": name, "state": "Pending", "reason": reason,
                   "databricks": record.model_dump(mode="json", by_alias=True,
                                                   exclude_none=True)}]},
    )  # fmt: skip


async def _found_again(
    space: databricks_client.Workspace,
    run: labels.Named,
    name: str,
    claim: batch.DatabricksRun,
    body: Mapping[str, Any],
) -> batch.DatabricksRun:
    """A claimed attempt whose submit's answer was never recorded, with the run it made, found
    by its name; unchanged where it made none."""
    run_id = await space.find_run(
        databricks_requests.run_name(run, name, claim.attempt),
        submitted_from_ms=_created_ms(body),
    )
    return claim if run_id is None else claim.model_copy(update={"run_id": run_id})


def _created_ms(body: Mapping[str, Any]) -> int:
    """When the BatchJob was made: none of its runs were submitted before."""
    created = body["metadata"].get("creationTimestamp")
    if not created:
        return 0
    moment = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


async def workspace_host(
    settings: batch.Databricks,
    namespace: str,
    *,
    field: str = "spec.databricks",
    allowed: tuple[egress.Network, ...] = ALLOWED_NETWORKS,
) -> str | verdicts.Verdict:
    """The workspace's URL: `host`, or the Azure workspace's that `workspaceResourceId` names
    (read from Azure Resource Manager); a verdict, naming `settings` as `field`, where it
    cannot be had. A BatchJob's `spec.databricks` and an endpoint's `spec.batch.databricks`
    (`realtime_handlers`) are read alike.

    The operator calls `host` with a token because a BatchJob says so: like a webhook's, it must
    resolve to public addresses or ones in `allowed`, lest a BatchJob point the operator at
    the cloud's metadata service or a Service inside the cluster; `workspace` holds each
    connection to the same rule. (Azure's answer is Azure's.)"""
    if settings.host is not None:
        refused = await egress.refusal(settings.host, allowed)
        if refused is not None:
            return verdicts.Verdict(
                "False", "HostNotAllowed", f"{field}.host {settings.host}: {refused}"
            )
        return settings.host
    assert settings.workspace_resource_id is not None, "the CRD requires host or the resource ID"
    principal = azure_workspaces.Principal()
    if settings.azure is not None:
        ref = settings.azure.client_secret_ref
        secret = None if ref is None else await kube.secret_value(ref.name, ref.key, namespace)
        if ref is not None and secret is None:
            return verdicts.Verdict(
                "False", "SecretNotFound", f"the Secret {ref.name} named by "
                f"{field}.azure.clientSecretRef has no key {ref.key}",
            )  # fmt: skip
        principal = azure_workspaces.Principal(
            settings.azure.tenant_id, settings.azure.client_id, secret
        )
    try:
        return await azure_workspaces.workspace_url(
            settings.workspace_resource_id, principal, azure_workspaces.Cloud.from_env(),
            field=field,
        )  # fmt: skip
    except databricks_client.NotFound as error:
        return verdicts.Verdict("False", "WorkspaceNotFound", str(error))
    except databricks_client.Refused as error:
        return verdicts.Verdict(
            "False", "AzureAuthFailed", f"{error}; tried again at the next re-check"
        )
    except databricks_client.Failure as error:
        return verdicts.Verdict(
            "Unknown", "AzureUnavailable", f"{error}; tried again at the next re-check"
        )


def workspace(
    settings: batch.Databricks,
    host: str,
    token: str,
    *,
    allowed: tuple[egress.Network, ...] = ALLOWED_NETWORKS,
) -> databricks_client.Workspace:
    """The workspace at `host` (`workspace_host`'s answer): where the spec named the host, every
    connection to it is checked as it is made, lest the name answer another address then."""
    guard = None if settings.host is None else (f"spec.databricks.host {settings.host}", allowed)
    return databricks_client.Workspace(host, token, guard=guard)


def settings_of(configmap: Mapping[str, Any]) -> config.BatchJobConfig:
    return config.BatchJobConfig.model_validate_json(configmap["data"][batch_children.CONFIG_FILE])


def recorded_attempt(body: Mapping[str, Any], name: str) -> batch.DatabricksRun | None:
    """The run's latest attempt, as status recorded it."""
    for run in body.get("status", {}).get("runs") or []:
        if run.get("name") == name and run.get("databricks"):
            return batch.DatabricksRun.model_validate(run["databricks"])
    return None


async def cancel_on_delete(spec: batch.BatchJobSpec, body: Mapping[str, Any]) -> str | None:
    """Cancels the run's attempt that may still go; the reason it could not, or None."""
    metadata = body["metadata"]
    job = labels.Ref(metadata["name"], metadata["namespace"])
    name = batch_children.one_off_run_name(job)
    record = recorded_attempt(body, name)
    if record is None or record.stopped or batch_status.recorded_run(body, name) is not None:
        return None  # nothing was submitted, or it no longer goes
    settings = spec.databricks
    assert settings is not None
    ref = settings.token_secret_ref
    token = await kube.secret_value(ref.name, ref.key, metadata["namespace"])
    if token is None:
        return f"the Secret {ref.name} named by spec.databricks.tokenSecretRef has no key {ref.key}"
    host = await workspace_host(settings, metadata["namespace"])
    if isinstance(host, verdicts.Verdict):
        return host.message
    space = workspace(settings, host, token)
    try:
        if record.run_id is None:
            record = await _found_again(space, job, name, record, body)
        if record.run_id is not None:
            await space.cancel(record.run_id)
    except databricks_client.NotFound:
        return None
    except databricks_client.Failure as error:
        return str(error)
    return None
