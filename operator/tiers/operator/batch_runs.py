"""A BatchJob's runs on the cluster: its Jobs or SparkApplications (listed, created, stopped) and
the progress their batch jobs publish to Redis. I/O only; what to do with them is
`batch_handlers`' and `batch_status`' business. A SparkApplication's state is read as the Job
status it amounts to (`batch_status.job_status_of`), so that the rest sees one kind of run."""

from __future__ import annotations

import datetime
import logging
import typing
from typing import Any

import httpx2
import lightkube
import redis.exceptions
from lightkube import codecs
from lightkube.resources.batch_v1 import Job
from lightkube.types import CascadeType

from tiers.operator import batch_status, children, kube, ownership, stats_reader
from tiers.operator.manifests import batch_children, labels, spark_application
from tiers.runtime.batch import progress

log = logging.getLogger(__name__)


async def owned_runs(owner: labels.Owner, *, spark_operator: bool) -> list[dict[str, Any]]:
    """The Jobs (or SparkApplications) of the BatchJob's runs: labelled as its runs and owned by
    this very object (one of the same name that it does not own is not its run). A
    SparkApplication's `status` is replaced by the Job status it amounts to. Jobs are listed
    once, then kept by the watch (`children.runs`)."""
    if not spark_operator:
        watched = children.runs(owner.uid)
        if watched is not None:
            return watched
    selector: dict[str, Any] = dict(batch_children.RUN.selector(owner))
    kind: Any = kube.SPARK_APPLICATION if spark_operator else Job
    found = []
    try:
        async for run in kube.client().list(kind, namespace=owner.namespace, labels=selector):
            manifest: dict[str, Any] = run.to_dict()
            owners = manifest["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner.uid for ref in owners):
                found.append(manifest)
    except httpx2.HTTPStatusError as error:
        if spark_operator and error.response.status_code == 404:
            raise kube.TypeNotServed(
                spark_application.API_VERSION, spark_application.KIND
            ) from error
        raise
    if spark_operator:
        for manifest in found:
            manifest["status"] = batch_status.job_status_of(manifest)
    else:
        children.record_runs(owner.uid, found)
    return found


def scheduled_time(job: dict[str, Any]) -> datetime.datetime | None:
    annotations = job["metadata"].get("annotations") or {}
    text = annotations.get(batch_children.SCHEDULED_ANNOTATION)
    return None if text is None else datetime.datetime.fromisoformat(text)


async def create(job: dict[str, Any]) -> kube.Change | None:
    """Creates a run's Job; one of ours that exists already (an operator restarted
    mid-reconcile made it) is left as it is: a Job's pod template cannot change. One of that
    name that this BatchJob does not control raises `ownership.ChildConflict` (its
    `NamesakesChild` while a deleted BatchJob of the same name controls it). Says what it made,
    for the BatchJob's Events."""
    try:
        await kube.client().create(codecs.from_dict(job))
    except lightkube.ApiError as error:
        if error.status.code != 409:
            raise
        key = ownership.Key.of(job)
        existing = await kube.read(key)
        owner_uid = ownership.controller_uid(job)
        if existing is not None and not ownership.is_ours(existing, owner_uid or ""):
            raise await kube.conflict(key, existing, job) from None
        return None
    return kube.Change("Created", job["kind"], job["metadata"]["name"])


async def stop(run: dict[str, Any] | None, name: str, namespace: str) -> kube.Change | None:
    """Deletes a run's Job (or SparkApplication) and its pods: the batch job is killed, its
    committed results stay. Says what it deleted, for the BatchJob's Events."""
    kind: Any = Job
    if run is not None and run.get("kind") == spark_application.KIND:
        kind = kube.SPARK_APPLICATION
    try:
        await kube.client().delete(kind, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
    except lightkube.ApiError as error:
        if error.status.code != 404:
            raise
        return None
    return kube.Change("Deleted", "Job" if kind is Job else spark_application.KIND, name)


class ProgressUnavailable(Exception):
    """The stats Redis did not answer: status keeps its last numbers and marks them stale."""


async def read_progress(
    where: stats_reader.Target | None, job: str, run: str
) -> progress.Progress | None:
    """The run's progress as its batch job last published it; None when there is none (or no
    stats Redis); `ProgressUnavailable` when Redis does not answer."""
    if where is None:
        return None
    try:
        raw = await stats_reader.redis_client(where).hgetall(progress.key(job, run))
        fields = typing.cast(dict[bytes, bytes], raw)
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("progress of %s/%s unavailable: %s", job, run, type(error).__name__)
        raise ProgressUnavailable(f"{job}/{run}: {type(error).__name__}") from None
    if not fields:
        return None
    try:
        return progress.from_fields({k.decode(): v.decode() for k, v in fields.items()})
    except (KeyError, ValueError) as error:
        log.warning("progress of %s/%s unreadable: %s", job, run, error)
        return None
