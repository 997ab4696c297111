"""The Kubernetes children of a StreamPipeline, rendered from its spec: pure.

The streaming job's ConfigMap (`stream.json`, a `StreamJobConfig`), a PersistentVolumeClaim for
its checkpoint (when the spec asks for a volume), the push gateway's Deployment and Service, and
the job: with `engine: deployment` a Deployment (one pod running Spark `local[N]`; `Recreate`, so
two jobs never share a checkpoint), with `engine: spark-operator` a SparkApplication
(`manifests.spark_application`), last, so that everything else is in place should the cluster
lack the Spark Operator. The StreamPipeline handler applies them in this order.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tiers.api import common, stream
from tiers.operator.manifests import backends, labels, security, services, spark_application
from tiers.runtime import providers
from tiers.runtime.modelcall import config as modelcall_config
from tiers.runtime.stream import config

JOB = labels.Component(app="tiers-stream-job", role="stream-job", suffix="stream")
PUSH = labels.Component(app="tiers-push-gateway", role="push-gateway", suffix="push")
PUSH_PORT = 8086
CONFIG_DIR = "/etc/tiers"
CHECKPOINT_DIR = "/var/lib/tiers/checkpoint"
JARS = ("/opt/tiers/jars/*.jar",)
"""Where the image keeps Spark's Kafka connector."""
JOB_ARGS = ("job", "--config", f"{CONFIG_DIR}/stream.json")
"""What `python -m tiers.runtime.stream` is given, by either engine."""


def endpoint_url(namespace: str, endpoint: str) -> str:
    """The in-cluster OpenAI base URL of a RealtimeEndpoint (its gateway Service)."""
    return f"http://{endpoint}-gateway.{namespace}.svc:8080/v1"


def backend_key_env() -> str:
    return "TIERS_MODEL_API_KEY"


def model_call(
    owner: labels.Owner, call: common.ModelCall, *, endpoint_model: str | None
) -> modelcall_config.ModelCallConfig:
    """The shared model client's config from the spec's `model` block; `endpoint_model` is the
    model the referenced RealtimeEndpoint serves (its `spec.model`)."""
    target: modelcall_config.EndpointTarget | providers.BackendConfig
    if call.endpoint_ref is not None:
        if endpoint_model is None:
            raise ValueError(f"RealtimeEndpoint {call.endpoint_ref.name} not found")
        target = modelcall_config.EndpointTarget(
            url=endpoint_url(owner.namespace, call.endpoint_ref.name)
        )
        model = endpoint_model
    else:
        backend = call.backend
        assert backend is not None, "the CRD requires endpointRef or backend"
        target = backends.backend_config(backend, api_key_env=backend_key_env())
        model = backend.model
    return modelcall_config.ModelCallConfig(
        target=target,
        model=model,
        prompt=call.prompt,
        route=call.route,
        rows_per_request=call.rows_per_request,
        max_tokens=call.max_tokens,
        max_in_flight=call.max_in_flight,
        max_attempts=call.max_attempts,
    )


def job_config(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    bootstrap: str,
    stats_redis_url: str | None,
    endpoint_model: str | None,
) -> config.StreamJobConfig:
    checkpoint = spec.checkpoint.uri or f"file://{CHECKPOINT_DIR}"
    return config.StreamJobConfig(
        pipeline=f"{owner.namespace}/{owner.name}",
        bootstrap=bootstrap,
        input_topic=spec.topics.input.name,
        output_topic=spec.topics.output.name,
        dead_letter_topic=spec.topics.dead_letter.name,
        model=model_call(owner, spec.model, endpoint_model=endpoint_model),
        checkpoint=checkpoint,
        trigger_interval_ms=spec.trigger.interval_ms,
        max_offsets_per_trigger=spec.trigger.max_offsets_per_trigger,
        stats_redis_url=stats_redis_url,
        # Under the Spark Operator, spark-submit gives the master and the connector's classpath.
        master=f"local[{spec.spark.cores}]" if spec.engine == "deployment" else None,
        jars=JARS if spec.engine == "deployment" else (),
    )


def desired_children(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    *,
    image: str,
    bootstrap: str,
    stats_redis_url: str | None,
    endpoint_model: str | None,
) -> list[dict[str, Any]]:
    settings = job_config(
        owner,
        spec,
        bootstrap=bootstrap,
        stats_redis_url=stats_redis_url,
        endpoint_model=endpoint_model,
    )
    data = {"stream.json": settings.model_dump_json(indent=2)}
    if spec.engine == "spark-operator":
        data[spark_application.LAUNCHER_KEY] = spark_application.LAUNCHER
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": JOB.metadata(owner),
        "data": data,
    }
    digest = hashlib.sha256(json.dumps(configmap["data"], sort_keys=True).encode()).hexdigest()
    children = [configmap]
    if spec.checkpoint.volume_size is not None:
        children.append(_checkpoint_claim(owner, spec.checkpoint.volume_size))
    replicas = 0 if spec.suspend else 1
    if spec.engine == "deployment":
        children.append(_job_deployment(owner, spec, image=image, replicas=replicas, digest=digest))
    children.append(_push_deployment(owner, image=image, replicas=replicas, digest=digest))
    children.append(
        services.render_cluster_ip_service(owner, PUSH, port=PUSH_PORT, port_name="http")
    )
    if spec.engine == "spark-operator":
        children.append(_job_spark_application(owner, spec, image=image, digest=digest))
    return children


def push_url(owner: labels.Owner) -> str:
    return f"http://{PUSH.name(owner)}.{owner.namespace}.svc:{PUSH_PORT}/events"


def _checkpoint_claim(owner: labels.Owner, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": JOB.metadata(owner),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def _tmp_mount() -> dict[str, Any]:
    return {"name": "tmp", "mountPath": "/tmp"}


def _job_volumes(
    owner: labels.Owner, spec: stream.StreamPipelineSpec
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The job's volumes and the driver's mounts of them (either engine): its config, a writable
    /tmp (the root filesystem is read-only) and, when the spec asks for one, the checkpoint."""
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
    return volumes, mounts


def _job_spark_application(
    owner: labels.Owner, spec: stream.StreamPipelineSpec, *, image: str, digest: str
) -> dict[str, Any]:
    volumes, mounts = _job_volumes(owner, spec)
    return spark_application.render_spark_application(
        owner, spec, JOB, image=image, arguments=JOB_ARGS, config_dir=CONFIG_DIR,
        volumes=volumes, driver_mounts=mounts, executor_mounts=[_tmp_mount()],
        env=_model_key_env(spec.model), digest=digest,
    )  # fmt: skip


def _job_deployment(
    owner: labels.Owner, spec: stream.StreamPipelineSpec, *, image: str, replicas: int, digest: str
) -> dict[str, Any]:
    volumes, mounts = _job_volumes(owner, spec)
    container = {
        "name": "spark",
        "image": image,
        "command": ["python", "-m", "tiers.runtime.stream", *JOB_ARGS],
        "env": _model_key_env(spec.model),
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
    owner: labels.Owner, *, image: str, replicas: int, digest: str
) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container = {
        "name": "push",
        "image": image,
        "command": [
            "python",
            "-m",
            "tiers.runtime.stream",
            "push",
            "--config",
            f"{CONFIG_DIR}/stream.json",
            "--host",
            "0.0.0.0",
            "--port",
            str(PUSH_PORT),
        ],
        "ports": [{"name": "http", "containerPort": PUSH_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": probe,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": security.container_security_context(security.NONROOT_UID),
    }
    volumes = [{"name": "config", "configMap": {"name": JOB.name(owner)}}]
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
                "annotations": {"tiers.dev/config-hash": digest[:16]},
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


def _model_key_env(call: common.ModelCall) -> list[dict[str, Any]]:
    ref = call.backend.api_key_secret_ref if call.backend is not None else None
    if ref is None:
        return []
    return [
        {
            "name": backend_key_env(),
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    ]
