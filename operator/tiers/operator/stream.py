"""Reconciles StreamPipeline: Kafka topics through the admin API, then the streaming job, and
writes conditions, lag, throughput, latency and cost into status. On delete, `deletionPolicy`
decides whether the topics go too."""

from __future__ import annotations

from typing import Any

import kopf
import pydantic

from tiers.api import kinds, stream
from tiers.operator import (
    kafka_admin,
    kube,
    metrics,
    reconciliation,
    stream_status,
    topics,
    triggers,
    verdicts,
)

KIND = kinds.STREAM_PIPELINE


@triggers.reconciler(KIND)
async def reconcile_stream_pipeline(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    with metrics.reconciling(KIND.kind):
        try:
            spec = stream.StreamPipelineSpec.model_validate(body.get("spec", {}))
        except pydantic.ValidationError:
            reconciliation.reconcile(KIND, body, patch, pending_message="")
            return
        namespace = body["metadata"]["namespace"]
        bootstrap = await bootstrap_servers(spec, namespace)
        observed = stream_status.Observed(
            topics=await reconcile_topics(spec, bootstrap),
            streaming=verdicts.Verdict(
                "Unknown", "NotDeployed", "the streaming job is not deployed by this version yet"
            ),
        )
        desired = stream_status.desired_status(observed, body=body, now=reconciliation.now())
        reconciliation.write_status(patch, body, desired)


@kopf.on.delete(kinds.GROUP, kinds.VERSION, KIND.plural)
async def delete_stream_pipeline(body: kopf.Body, **_: Any) -> None:
    """Deletes the topics when `deletionPolicy: Delete`; `Retain` (the default) keeps them."""
    try:
        spec = stream.StreamPipelineSpec.model_validate(body.get("spec", {}))
    except pydantic.ValidationError:
        return
    if spec.deletion_policy != "Delete":
        return
    bootstrap = await bootstrap_servers(spec, body["metadata"]["namespace"])
    if bootstrap is None:
        return
    names = [topic.name for _, topic in topics.desired_topics(spec)]
    try:
        await kafka_admin.delete(bootstrap, names)
    except kafka_admin.AdminError as error:
        raise kopf.TemporaryError(f"deleting topics {names} failed: {error}", delay=10) from error


async def bootstrap_servers(spec: stream.StreamPipelineSpec, namespace: str) -> str | None:
    if spec.kafka.bootstrap_servers is not None:
        return spec.kafka.bootstrap_servers
    ref = spec.kafka.bootstrap_secret_ref
    assert ref is not None, "the CRD requires one of bootstrapServers or bootstrapSecretRef"
    return await kube.secret_value(ref.name, ref.key, namespace)


async def reconcile_topics(
    spec: stream.StreamPipelineSpec, bootstrap: str | None
) -> verdicts.Verdict:
    """Brings the topics in line with the spec; the verdict for TopicsReady."""
    if bootstrap is None:
        ref = spec.kafka.bootstrap_secret_ref
        return verdicts.Verdict(
            "False",
            "SecretNotFound",
            f"Secret {ref.name if ref else '?'} with the bootstrap servers, named by "
            "spec.kafka.bootstrapSecretRef, does not exist",
        )
    duplicates = topics.duplicate_names(spec)
    if duplicates:
        return verdicts.Verdict(
            "False", "InvalidSpec", f"topic names used for more than one role: {duplicates}"
        )
    names = [topic.name for _, topic in topics.desired_topics(spec)]
    try:
        plan = topics.plan(spec, await kafka_admin.describe(bootstrap, names))
        if not plan.is_noop:
            await kafka_admin.apply(bootstrap, plan)
    except kafka_admin.KafkaUnavailable as error:
        return verdicts.Verdict("False", "KafkaUnavailable", str(error))
    except kafka_admin.AdminError as error:
        return verdicts.Verdict("False", "KafkaError", str(error))
    if plan.conflicts:
        first = plan.conflicts[0]
        message = "; ".join(conflict.message for conflict in plan.conflicts)
        return verdicts.Verdict("False", first.reason, message)
    return verdicts.Verdict("True", "Ready", f"topics {', '.join(names)} match the spec")
