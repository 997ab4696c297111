"""The Kubernetes children of a StreamPipeline, rendered from its spec: pure.

The streaming job's ConfigMap (`stream.json`, a `StreamJobConfig`), a PersistentVolumeClaim for
its checkpoint (when the spec asks for a volume), the push gateway's Deployment and Service, and
the job: with `engine: deployment` a Deployment (one pod running Spark `local[N]`; `Recreate`, so
two jobs never share a checkpoint), with `engine: spark-operator` a SparkApplication
(`manifests.spark_application`), late, so that everything else is in place should the cluster
lack the Spark Operator; the push gateway's Ingress or HTTPRoute (`spec.push.expose`) comes
last, since a cluster may lack the HTTPRoute's CRD too. The StreamPipeline handler applies them
in this order; the Redis that keeps the job's stats (`STATS`: a Deployment and a Service, its
password in a Secret that the handler generates once, given to the job by reference) comes after
the push gateway. The job's
model client is configured as every job's is (`model_client`).

Bootstrap servers kept in a Secret (`kafka.bootstrapSecretRef`) reach the job and the push gateway
as the `BOOTSTRAP_ENV` variable, read from that Secret: the ConfigMap names the variable only.
"""

from __future__ import annotations

import pathlib
from typing import Any

from tiers.api import common, stream
from tiers.operator.manifests import (
    exposure,
    gateway,
    labels,
    model_client,
    network_policies,
    redis,
    security,
    services,
    serving_tls,
    spark_application,
    stats_store,
    telemetry,
)
from tiers.runtime import sparkjars
from tiers.runtime.stream import config

JOB = labels.Component(app="tiers-stream-job", role="stream-job", suffix="stream")
PUSH_PORT = 8086
PUSH = labels.Component(
    app="tiers-push-gateway", role="push-gateway", suffix="push", port=PUSH_PORT
)
CONFIG_DIR = "/etc/tiers"
CONFIG_FILE = "stream.json"
CHECKPOINT_DIR = "/var/lib/tiers/checkpoint"
JARS = sparkjars.IMAGE_JARS
"""Where the image keeps Spark's Kafka connector."""
JOB_ARGS = ("job", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}")
"""What `python -m tiers.runtime.stream` is given, by either engine."""
STATS = labels.Component(app="tiers-redis", role="stats", suffix="stream-stats", port=redis.PORT)
"""The pipeline's own Redis for its stats, whatever its model is called through."""
PUSH_KEYS_DIR = "/var/run/tiers/push-keys"
"""Where the push gateway's pods mount spec.push.auth's Secret (one accepted key per file)."""
SERVICE_NAME = "tiers-stream"
"""The `service.name` of the job's spans."""
BOOTSTRAP_ENV = "TIERS_KAFKA_BOOTSTRAP"
"""The variable the job's and push gateway's pods get bootstrap servers kept in a Secret in."""


def job_config(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    stats_redis_url: str | None,
    endpoint_model: str | None,
    endpoint_tls: bool = False,
    default_telemetry: common.Telemetry | None = None,
) -> config.StreamJobConfig:
    """The job's config; its spans go where spec.telemetry says, else to the chart's
    `default_telemetry`."""
    checkpoint = spec.checkpoint.uri or f"file://{CHECKPOINT_DIR}"
    from_secret = spec.kafka.bootstrap_secret_ref is not None
    return config.StreamJobConfig(
        pipeline=f"{owner.namespace}/{owner.name}",
        bootstrap=spec.kafka.bootstrap_servers,
        bootstrap_env=BOOTSTRAP_ENV if from_secret else None,
        input_topic=spec.topics.input.name,
        output_topic=spec.topics.output.name,
        dead_letter_topic=spec.topics.dead_letter.name,
        model=model_client.model_call(
            owner, spec.model, endpoint_model=endpoint_model, endpoint_tls=endpoint_tls
        ),
        checkpoint=checkpoint,
        trigger_interval_ms=spec.trigger.interval_ms,
        max_offsets_per_trigger=spec.trigger.max_offsets_per_trigger,
        stats_redis_url=stats_redis_url,
        stats_redis_password_env=None if stats_redis_url is None else stats_store.PASSWORD_ENV,
        # Under the Spark Operator, spark-submit gives the master and the connector's classpath.
        master=f"local[{spec.spark.cores}]" if spec.engine == "deployment" else None,
        jars=JARS if spec.engine == "deployment" else (),
        push=config.PushConfig(
            api_keys_dir=None if spec.push.auth is None else pathlib.Path(PUSH_KEYS_DIR),
            allowed_origins=tuple(spec.push.allowed_origins),
        ),
        tracing=telemetry.tracing(spec.telemetry or default_telemetry, service_name=SERVICE_NAME),
    )


def desired_children(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    image: str,
    stats_redis_url: str | None,
    endpoint_model: str | None,
    network_policy: network_policies.Settings | None = None,
    stats_password: str | None = None,
    push_ca: str | None = None,
    endpoint_tls: bool = False,
    default_telemetry: common.Telemetry | None = None,
    backend_tls_policy: str | None = None,
) -> list[dict[str, Any]]:
    """Every object the pipeline should own, in apply order (see the module's docstring); with
    `network_policy` enabled, NetworkPolicies of the stats Redis and the push gateway follow.
    `stats_password` (as its Secret holds it) goes on the stats Redis's and the job's pods as a
    digest only, so that a re-made Secret rolls both together. With `spec.push.tls`, the
    cert-manager Certificate (issuerRef) and the CA's ConfigMap (`push_ca`, once known) come
    first; `endpoint_tls` says the endpointRef's gateway serves https (its CA is mounted); the
    job's spans go where spec.telemetry says, else to the chart's `default_telemetry`.
    `backend_tls_policy` is the version at which the cluster serves BackendTLSPolicy (None: it
    does not): an HTTPRoute to a push gateway with `spec.push.tls` is followed by one."""
    settings = job_config(
        owner,
        spec,
        stats_redis_url=stats_redis_url,
        endpoint_model=endpoint_model,
        endpoint_tls=endpoint_tls,
        default_telemetry=default_telemetry,
    )
    data = {CONFIG_FILE: settings.model_dump_json(indent=2)}
    if spec.engine == "spark-operator":
        data[spark_application.LAUNCHER_KEY] = spark_application.LAUNCHER
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": JOB.metadata(owner),
        "data": data,
    }
    digest = labels.config_hash(data)
    children = [configmap]
    if spec.push.tls is not None:
        children += serving_tls.render_children(owner, PUSH, spec.push.tls, push_ca)
    if spec.checkpoint.volume_size is not None:
        children.append(_checkpoint_claim(owner, spec.checkpoint.volume_size))
    replicas = 0 if spec.suspend else 1
    if spec.engine == "deployment":
        job = _job_deployment(
            owner, spec, image=image, replicas=replicas, digest=digest, endpoint_tls=endpoint_tls
        )
        if stats_password is not None:
            labels.stamp_secret_hash(job, stats_password)
        children.append(job)
    children.append(_push_deployment(owner, spec, image=image, replicas=replicas, digest=digest))
    children.append(
        services.render_cluster_ip_service(
            owner, PUSH, port_name=serving_tls.port_name(spec.push.tls)
        )
    )
    stats = redis.render_deployment(owner, component=STATS, size=redis.STATS)
    if stats_password is not None:
        labels.stamp_secret_hash(stats, stats_password)
    children.append(stats)
    children.append(redis.render_service(owner, component=STATS))
    if network_policy is not None and network_policy.enabled:
        children.append(
            network_policies.render_redis_policy(
                owner, redis=STATS, clients=(JOB,), settings=network_policy
            )
        )
        children.append(
            network_policies.render_push_gateway_policy(owner, push=PUSH, settings=network_policy)
        )
    if spec.engine == "spark-operator":
        # The driver rolls on its config hash: a re-made stats password counts as a change.
        if stats_password is not None:
            digest = labels.config_hash({**data, "stats-password": stats_password})
        children.append(
            _job_spark_application(
                owner, spec, image=image, digest=digest, endpoint_tls=endpoint_tls
            )
        )
    if spec.push.expose is not None:
        children += exposure.render_children(
            owner,
            PUSH,
            spec.push.expose,
            backend_tls=spec.push.tls is not None,
            ca_published=push_ca is not None,
            policy_version=backend_tls_policy,
        )
    return children


def push_url(owner: labels.Named, *, tls: bool = False) -> str:
    """Where the push gateway of `owner` (a StreamPipeline) takes events; https with
    `spec.push.tls`."""
    return PUSH.url(owner, scheme="https" if tls else "http", path="/events")


def _checkpoint_claim(owner: labels.Owner, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": JOB.metadata(owner),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def _bootstrap_env(spec: stream.StreamPipelineSpec) -> list[dict[str, Any]]:
    """The env entry of bootstrap servers kept in a Secret; none when the spec gives them."""
    ref = spec.kafka.bootstrap_secret_ref
    return [] if ref is None else [security.secret_env(BOOTSTRAP_ENV, ref)]


def _job_env(owner: labels.Owner, spec: stream.StreamPipelineSpec) -> list[dict[str, Any]]:
    stats = redis.password_env(owner, stats_store.PASSWORD_ENV, component=STATS)
    return [*_bootstrap_env(spec), *model_client.key_env(owner, spec.model), stats]


def _tmp_mount() -> dict[str, Any]:
    return {"name": "tmp", "mountPath": "/tmp"}


def _job_volumes(
    owner: labels.Owner, spec: stream.StreamPipelineSpec, *, endpoint_tls: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The job's volumes and the driver's mounts of them (either engine): its config, a writable
    /tmp (the root filesystem is read-only), when the spec asks for one, the checkpoint, and
    the CA of an endpointRef's gateway that serves https."""
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}, _tmp_mount()]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": JOB.name(owner)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
    ]
    if spec.checkpoint.volume_size is not None:
        mounts.append({"name": "checkpoint", "mountPath": CHECKPOINT_DIR})
        volumes.append(
            {"name": "checkpoint", "persistentVolumeClaim": {"claimName": JOB.name(owner)}}
        )
    ref = spec.model.endpoint_ref
    if endpoint_tls and ref is not None:
        endpoint = labels.Ref(ref.name, owner.namespace)
        volumes.append(serving_tls.client_volume(endpoint, gateway.COMPONENT))
        mounts.append(serving_tls.client_mount())
    return volumes, mounts


def _job_spark_application(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    image: str,
    digest: str,
    endpoint_tls: bool,
) -> dict[str, Any]:
    volumes, mounts = _job_volumes(owner, spec, endpoint_tls=endpoint_tls)
    # Executors score the rows: they verify the endpoint too.
    executor_mounts = [_tmp_mount(), *(m for m in mounts if m["name"] == "server-ca")]
    return spark_application.render_spark_application(
        owner, JOB, image=spec.spark.image or image, arguments=JOB_ARGS, config_dir=CONFIG_DIR,
        volumes=volumes, driver_mounts=mounts, executor_mounts=executor_mounts,
        env=_job_env(owner, spec), digest=digest, executors=1,
        cores=spec.spark.cores, memory=spec.spark.memory, suspend=spec.suspend,
        restart_policy=spark_application.ALWAYS, spark_conf=config.SPARK_CONF,
    )  # fmt: skip


def _job_deployment(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    image: str,
    replicas: int,
    digest: str,
    endpoint_tls: bool,
) -> dict[str, Any]:
    volumes, mounts = _job_volumes(owner, spec, endpoint_tls=endpoint_tls)
    container = {
        "name": "spark",
        "image": image,
        "command": ["python", "-m", "tiers.runtime.stream", *JOB_ARGS],
        "env": _job_env(owner, spec),
        "resources": {
            "requests": {"cpu": str(spec.spark.cores), "memory": spec.spark.memory},
            "limits": {"memory": spec.spark.memory},
        },
        "volumeMounts": mounts,
        "securityContext": security.container_security_context(security.NONROOT_UID),
    }
    return _deployment(owner, JOB, container, volumes, replicas=replicas, digest=digest,
                       strategy={"type": "Recreate"})  # fmt: skip


def _push_deployment(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    image: str,
    replicas: int,
    digest: str,
) -> dict[str, Any]:
    tls = spec.push.tls
    probe = {**serving_tls.probe("/healthz", tls), "periodSeconds": 10}
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": JOB.name(owner)}}]
    flags: list[str] = []
    if tls is not None:
        mounts.append(serving_tls.server_mount())
        volumes.append(serving_tls.server_volume(owner, PUSH, tls))
        flags = serving_tls.server_flags()
    container = {
        "name": "push",
        "image": image,
        "command": [
            "python",
            "-m",
            "tiers.runtime.stream",
            "push",
            "--config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
            "--host",
            "0.0.0.0",
            "--port",
            str(PUSH_PORT),
            *flags,
        ],
        "ports": [
            {"name": serving_tls.port_name(tls), "containerPort": PUSH_PORT, "protocol": "TCP"}
        ],
        "readinessProbe": probe,
        "livenessProbe": probe,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "volumeMounts": mounts,
        "securityContext": security.container_security_context(security.NONROOT_UID),
    }
    if spec.kafka.bootstrap_secret_ref is not None:
        container["env"] = _bootstrap_env(spec)
    if spec.push.auth is not None:
        # Mounted, not an env var: the kubelet updates the files when the Secret changes, and
        # the push gateway re-reads them (a revoked key stops working without a restart).
        secret = spec.push.auth.api_keys_secret_ref.name
        volumes.append({"name": "push-keys", "secret": {"secretName": secret}})
        container["volumeMounts"] = [
            *mounts,
            {"name": "push-keys", "mountPath": PUSH_KEYS_DIR, "readOnly": True},
        ]
    return _deployment(owner, PUSH, container, volumes, replicas=replicas, digest=digest)


def _deployment(
    owner: labels.Owner,
    component: labels.Component,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    *,
    replicas: int,
    digest: str,
    strategy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": component.selector(owner)},
        "template": {
            "metadata": {
                "labels": component.labels(owner),
                "annotations": {labels.CONFIG_HASH_ANNOTATION: digest},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": security.pod_security_context(security.NONROOT_UID),
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": component.metadata(owner),
        "spec": spec,
    }
