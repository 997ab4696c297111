"""Reconciles StreamPipeline: Kafka topics through the admin API, then the streaming job, and
writes conditions, lag, throughput, latency and cost into status. On delete, `deletionPolicy`
decides whether the topics go too."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf
import lightkube
import pydantic

from tiers.api import kinds, stream
from tiers.operator import (
    caller_keys,
    kafka_admin,
    kube,
    metrics,
    ownership,
    rechecks,
    reconciliation,
    serving_certificates,
    stats_reader,
    stream_status,
    topics,
    triggers,
    verdicts,
)
from tiers.operator.manifests import (
    exposure,
    labels,
    network_policies,
    redis,
    serving_tls,
    spark_application,
    stats_store,
    stream_children,
    telemetry,
)

KIND = kinds.STREAM_PIPELINE
DEFAULT_TELEMETRY = telemetry.default_from(os.environ)
"""The chart's `telemetry.*`, for pipelines whose spec names no collector."""
TOPIC_DELETION_TIMEOUT_S = float(os.environ.get("TIERS_TOPIC_DELETION_TIMEOUT_SECONDS", "300"))
"""How long deleting a pipeline's topics is retried before the pipeline goes without it."""


@triggers.reconciler(KIND)
async def reconcile_stream_pipeline(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    with metrics.reconciling(KIND.kind):
        spec = reconciliation.parse_spec(KIND, stream.StreamPipelineSpec, body, patch)
        if spec is None:
            return
        if reconciliation.refused_to_run(
            KIND, body, patch, image=spec.spark.image, call=spec.model
        ):
            return
        owner = reconciliation.owner_of(KIND, body)
        bootstrap = await bootstrap_servers(spec, owner.namespace)
        topics_verdict, owned_topics = await reconcile_topics(
            spec, bootstrap, owned=recorded_topics(body), owner=owner
        )
        streaming_verdict, push_ca = await apply_children(
            owner, spec, known_brokers=bootstrap is not None, body=body
        )
        if streaming_verdict is None:
            streaming_verdict = await push_keys_verdict(spec, owner.namespace)
        if streaming_verdict is None:
            streaming_verdict = await push_certificate_verdict(owner, spec)
        if streaming_verdict is None:
            streaming_verdict = await job_verdict(owner, spec)
        where = await stats_reader.target(
            stats_store.managed(owner, stream_children.STATS), owner.namespace
        )
        subject = f"{owner.namespace}/{owner.name}"
        summary, lag = None, None
        if where is not None:
            summary = await stats_reader.summary(
                where, subject, minutes=verdicts.WINDOW_SECONDS // 60
            )
            if bootstrap is not None and topics_verdict.status == "True":
                lag = await input_lag(bootstrap, spec.topics.input.name, where, subject)
        observed = stream_status.Observed(
            topics=topics_verdict,
            streaming=streaming_verdict,
            lag=lag,
            summary=summary,
            owned_topics=owned_topics,
            stats_unavailable=where is not None and summary is None,
            push=serving_tls.status_address(
                stream_children.PUSH.url(owner, scheme=serving_tls.scheme(spec.push.tls)),
                spec.push.tls,
                push_ca,
            ),
        )
        desired = stream_status.desired_status(observed, body=body, now=reconciliation.now())
        reconciliation.write_status(patch, body, desired)


def plan_created(plan: topics.Plan) -> list[str]:
    return [topic.name for topic in plan.create]


def recorded_topics(body: Mapping[str, Any]) -> dict[str, str]:
    """The topics the pipeline owns, as its status records them: name to Kafka topic id (or
    `topics.CLAIMED`, made by a reconcile that was stopped before it recorded the id)."""
    records = (body.get("status") or {}).get("topics") or []
    return {str(r["name"]): str(r.get("id") or topics.CLAIMED) for r in records if r.get("name")}


def deletes_topics(spec: kopf.Spec, **_: Any) -> bool:
    """Whether deleting the pipeline has topics to delete: kopf puts its finalizer only on such
    pipelines (and takes it off again when the policy turns `Retain`)."""
    return spec.get("deletionPolicy") == "Delete"


@kopf.on.delete(kinds.GROUP, kinds.VERSION, KIND.plural, when=deletes_topics)
async def delete_stream_pipeline(body: kopf.Body, runtime: datetime.timedelta, **_: Any) -> None:
    """Deletes the topics of a pipeline with `deletionPolicy: Delete`. While Kafka does not
    answer (or the bootstrap Secret is gone) it retries for `TOPIC_DELETION_TIMEOUT_S`, then lets
    the pipeline (and its namespace) go, with a Warning Event naming the topics left in Kafka."""
    try:
        spec = stream.StreamPipelineSpec.model_validate(body.get("spec", {}))
    except pydantic.ValidationError:
        return
    names = [topic.name for _, topic in topics.desired_topics(spec)]
    began = time.monotonic()
    # After a reconcile running beside it, and with the topics it recorded: one that made a
    # topic as the pipeline was deleted would otherwise leave it in Kafka.
    async with rechecks.exclusively(KIND, body) as current:
        failure = await _delete_topics(spec, body, recorded_topics(current), names)
    if failure is None:
        return
    waited = runtime.total_seconds() + time.monotonic() - began
    left = TOPIC_DELETION_TIMEOUT_S - waited
    if left > 0:
        raise kopf.TemporaryError(
            f"deleting topics {', '.join(names)} failed ({failure}); retrying for {int(left)} s",
            delay=min(10.0, max(1.0, left)),
        )
    kopf.event(
        body,
        type="Warning",
        reason="TopicsLeftBehind",
        message=(
            f"gave up deleting topics {', '.join(names)} from {brokers_named(spec)} after "
            f"{int(waited)} s ({failure}): they are left in Kafka; delete them there"
        ),
    )


async def _delete_topics(
    spec: stream.StreamPipelineSpec, body: kopf.Body, owned: Mapping[str, str], names: list[str]
) -> str | None:
    """Deletes the topics `owned` (as the newest status records them); why it could not, or
    None."""
    bootstrap = await bootstrap_servers(spec, body["metadata"]["namespace"])
    if bootstrap is None:
        return "the Secret named by spec.kafka.bootstrapSecretRef is missing"
    try:
        kept = await kafka_admin.delete_owned(bootstrap, owned)
    except kafka_admin.KafkaUnavailable:
        return "Kafka did not answer"
    except kafka_admin.AdminError as error:
        return f"Kafka refused: {error}"
    kept += [name for name in names if name not in owned]
    if kept:
        kopf.event(
            body,
            type="Normal",
            reason="TopicsKept",
            message=(
                f"topics {', '.join(sorted(set(kept)))} were not created by this "
                "pipeline (another pipeline or team did): they are left in Kafka"
            ),
        )
    return None


async def apply_children(
    owner: labels.Owner, spec: stream.StreamPipelineSpec, *, known_brokers: bool, body: kopf.Body
) -> tuple[verdicts.Verdict | None, str | None]:
    """Applies the streaming job (a Deployment or a SparkApplication, by `spec.engine`), its
    config and the push gateway, each change an Event on the pipeline; the StreamingReady
    verdict when that could not be done or the job is suspended, None when the job's own state
    is what to judge; and with spec.push.tls the CA its clients verify the push gateway with
    (the one status published before when it could not be read). The job reads bootstrap
    servers kept in a Secret from that Secret itself: they are never rendered."""
    push_ca = serving_certificates.published(body, "push", spec.push.tls)
    if not known_brokers:
        waiting = "the bootstrap servers are unknown"
        return verdicts.Verdict("Unknown", "WaitingForKafka", waiting), push_ca
    endpoint_model = None
    endpoint_tls = False
    if spec.model.endpoint_ref is not None:
        endpoint = await kube.realtime_endpoint_spec(spec.model.endpoint_ref.name, owner.namespace)
        if endpoint is None:
            return verdicts.Verdict(
                "False",
                "EndpointNotFound",
                f"RealtimeEndpoint {spec.model.endpoint_ref.name}, named by "
                "spec.model.endpointRef, does not exist",
            ), push_ca
        endpoint_model = str(endpoint.get("model"))
        endpoint_tls = endpoint.get("tls") is not None
    try:
        # Created once, then only read: a new password would lock the running job out.
        made = redis.render_password_secret(
            owner, redis.new_password(), component=stream_children.STATS
        )
        password = (await kube.generated_secret(made)).get(redis.PASSWORD_KEY)
        renewed: list[kube.Change] = []
        if spec.push.tls is not None:
            push_ca, renewed = await serving_certificates.prepare(
                owner, stream_children.PUSH, spec.push.tls
            )
        policy_version = await serving_certificates.backend_tls_policy_version(
            wanted=exposure.wants_backend_tls_policy(
                spec.push.expose, backend_tls=spec.push.tls is not None
            )
        )
        children = stream_children.desired_children(
            owner,
            spec,
            image=reconciliation.IMAGE,
            stats_redis_url=stats_reader.stats_url(default_stats_url(owner)),
            endpoint_model=endpoint_model,
            network_policy=network_policies.settings_from(os.environ),
            stats_password=password,
            push_ca=push_ca,
            endpoint_tls=endpoint_tls,
            default_telemetry=DEFAULT_TELEMETRY,
            backend_tls_policy=policy_version,
        )
        if spec.model.endpoint_ref is not None:
            # A key of its own for the endpoint, let in at once rather than at its next turn.
            await caller_keys.ensure_key(owner)
            await caller_keys.sync(spec.model.endpoint_ref.name, owner.namespace)
        # The NetworkPolicies go when the admin turns network policies off, the push gateway's
        # Ingress or HTTPRoute when spec.push.expose goes or switches to the other.
        optional = [
            *(
                (network_policies.API_VERSION, network_policies.KIND, component.name(owner))
                for component in (stream_children.STATS, stream_children.PUSH)
            ),
            *exposure.candidates(owner, stream_children.PUSH),
            *serving_tls.optional_children(owner, stream_children.PUSH),
            *exposure.backend_tls_policy_candidates(owner, stream_children.PUSH, policy_version),
        ]
        changes, unserved = await kube.sync_children(
            children, reconciliation.possible_leftovers(body, optional)
        )
        reconciliation.record_changes(body, renewed + changes)
        # The SparkApplication and the HTTPRoute, applied last, and spec.push.tls's cert-manager
        # Certificate are the only children whose type a cluster may lack: their apply failing
        # so finds it out at no extra request.
        if unserved is not None and serving_certificates.backend_tls_policy_unserved(unserved):
            unserved = None
        if unserved is not None and unserved.kind == exposure.HTTP_ROUTE:
            return exposure.gateway_api_missing("spec.push.expose"), push_ca
        if unserved is not None and unserved.kind == serving_tls.CERTIFICATE_KIND:
            return serving_tls.cert_manager_missing("spec.push.tls.issuerRef"), push_ca
        if unserved is not None and unserved.kind == spark_application.KIND:
            return stream_status.spark_operator_missing(owner.namespace), push_ca
        if unserved is not None:
            raise unserved
    except (ownership.ChildConflict, kube.SecretNotOurs) as error:
        return reconciliation.child_conflict(KIND, body, error), push_ca
    except kube.DiscoveryFailed as error:
        return serving_certificates.discovery_failed("spec.push.expose", error), push_ca
    except lightkube.ApiError as error:
        return verdicts.Verdict("False", "ApplyFailed", str(error.status.message)), push_ca
    if spec.suspend:
        suspended = "spec.suspend is true: the job is stopped"
        return verdicts.Verdict("False", "Suspended", suspended), push_ca
    return None, push_ca


async def push_certificate_verdict(
    owner: labels.Owner, spec: stream.StreamPipelineSpec
) -> verdicts.Verdict | None:
    """StreamingReady while the push gateway's certificate Secret (spec.push.tls.secretName,
    or the one cert-manager writes for its issuerRef) lacks its certificate: its pods wait."""
    missing = await serving_certificates.missing(
        owner, stream_children.PUSH, spec.push.tls, field="spec.push.tls"
    )
    if missing is None:
        return None
    field, name, key = missing
    message = f"Secret {name} with key {key}, named by {field}, does not exist: the push gateway"
    return verdicts.Verdict("False", "SecretNotFound", message + " serves once it does")


async def push_keys_verdict(
    spec: stream.StreamPipelineSpec, namespace: str
) -> verdicts.Verdict | None:
    """StreamingReady when spec.push.auth names a Secret that is missing or holds only blank
    values: the push gateway fails closed (every call 401), so the pipeline is not ready."""
    if spec.push.auth is None:
        return None
    name = spec.push.auth.api_keys_secret_ref.name
    keys = await kube.secret_nonblank_values(name, namespace)
    if keys is None:
        problem, reason = "does not exist", "SecretNotFound"
    elif keys == 0:
        problem, reason = "holds no non-blank value", "NoAPIKeys"
    else:
        return None
    return verdicts.Verdict(
        "False",
        reason,
        f"Secret {name}, named by spec.push.auth.apiKeysSecretRef, {problem}: the push gateway"
        " refuses every call with 401 until it holds a key",
    )


async def job_verdict(owner: labels.Owner, spec: stream.StreamPipelineSpec) -> verdicts.Verdict:
    """Whether the applied job runs: its Deployment has an available pod, or its
    SparkApplication's state (which the Spark Operator writes) says so."""
    name = stream_children.JOB.name(owner)
    if spec.engine == "spark-operator":
        app = await kube.spark_application(name, owner.namespace)
        return stream_status.spark_application_verdict(app)
    job = await kube.deployment_status(name, owner.namespace)
    if job is None:
        return verdicts.Verdict("Unknown", "Creating", "the streaming job is being created")
    if int(job.get("availableReplicas") or 0) >= 1:
        return verdicts.Verdict("True", "Running", "the streaming job is running")
    return verdicts.Verdict("False", "Unavailable", "the streaming job has no running pod")


def default_stats_url(owner: labels.Owner) -> str:
    """Where the job publishes its stats: the pipeline's own Redis, however it calls its model."""
    return redis.url(owner, stream_children.STATS)


async def input_lag(
    bootstrap: str, topic: str, where: stats_reader.Target, subject: str
) -> int | None:
    """Events in the input topic that the job has not read yet."""
    processed = await stats_reader.processed_offsets(where, subject)
    if processed is None:
        return None
    try:
        ends = await kafka_admin.end_offsets(bootstrap, topic)
    except kafka_admin.AdminError:
        return None
    return sum(max(end - processed.get(partition, 0), 0) for partition, end in ends.items())


async def bootstrap_servers(spec: stream.StreamPipelineSpec, namespace: str) -> str | None:
    """The brokers, read into memory only: from a Secret, they are never written anywhere
    (messages name them by `brokers_named`)."""
    if spec.kafka.bootstrap_servers is not None:
        return spec.kafka.bootstrap_servers
    ref = spec.kafka.bootstrap_secret_ref
    assert ref is not None, "the CRD requires one of bootstrapServers or bootstrapSecretRef"
    return await kube.secret_value(ref.name, ref.key, namespace)


def brokers_named(spec: stream.StreamPipelineSpec) -> str:
    """How status messages name the brokers: by address when the spec gives it, by their Secret
    when they are kept in one."""
    ref = spec.kafka.bootstrap_secret_ref
    if ref is None:
        return f"Kafka at {spec.kafka.bootstrap_servers}"
    return f"Kafka (the brokers from Secret {ref.name}, key {ref.key})"


async def reconcile_topics(
    spec: stream.StreamPipelineSpec,
    bootstrap: str | None,
    *,
    owned: Mapping[str, str],
    owner: labels.Owner,
) -> tuple[verdicts.Verdict, dict[str, str] | None]:
    """Brings the topics this pipeline owns (`owned`: name to Kafka topic id, as recorded in
    status) in line with the spec, and creates the missing ones; uses others' topics as they
    are. The verdict for TopicsReady, and the topics owned afterwards (None: not known, keep the
    record; after a failure, the claims on the topics it set out to make)."""
    if bootstrap is None:
        ref = spec.kafka.bootstrap_secret_ref
        return verdicts.Verdict(
            "False",
            "SecretNotFound",
            f"Secret {ref.name if ref else '?'} with the bootstrap servers, named by "
            "spec.kafka.bootstrapSecretRef, does not exist",
        ), None
    duplicates = topics.duplicate_names(spec)
    if duplicates:
        return verdicts.Verdict(
            "False", "InvalidSpec", f"topic names used for more than one role: {duplicates}"
        ), None
    names = [topic.name for _, topic in topics.desired_topics(spec)]
    claims: dict[str, str] | None = None  # the record, once it claims topics to be made
    claimed_before = owned
    try:
        actual = await kafka_admin.describe(bootstrap, names)
        plan = topics.plan(spec, actual, owned)
        if plan.create:
            # Claimed before they are made, and their ids recorded at once after: an operator
            # killed in between would find the topics it has just made someone else's.
            owned = claims = topics.claimed(owned, plan)
            await rechecks.write_status(
                KIND, owner.name, owner.namespace, {"topics": stream_status.owned_records(owned)}
            )
        if not plan.is_noop:
            await kafka_admin.apply(bootstrap, plan)
        if plan.create:
            actual = await kafka_admin.describe(bootstrap, names, created=plan_created(plan))
            made = topics.ownership(spec, actual, owned=owned, created=plan_created(plan))
            await rechecks.write_status(
                KIND, owner.name, owner.namespace, {"topics": stream_status.owned_records(made)}
            )
    except kafka_admin.KafkaUnavailable as error:
        return verdicts.Verdict(
            "False", "KafkaUnavailable", f"{brokers_named(spec)} did not answer: {error.cause}"
        ), claims
    except kafka_admin.NotCreated as error:
        kept = (
            None
            if claims is None
            else topics.unclaimed(
                claims, error.names, existing=error.existing, claimed_before=claimed_before
            )
        )
        return verdicts.Verdict("False", "KafkaError", str(error)), kept
    except kafka_admin.AdminError as error:
        return verdicts.Verdict("False", "KafkaError", str(error)), claims
    now_owned = topics.ownership(spec, actual, owned=owned, created=plan_created(plan))
    if plan.conflicts:
        first = plan.conflicts[0]
        message = "; ".join(conflict.message for conflict in plan.conflicts)
        return verdicts.Verdict("False", first.reason, message), now_owned
    ready = verdicts.Verdict("True", "Ready", f"topics {', '.join(names)} match the spec")
    return ready, now_owned
