"""The Kubernetes children of a BatchJob (`engine: spark`), rendered from its spec: pure.

- a ConfigMap, `<name>-batch`, with `batch.json`: the batch job's config (a `BatchJobConfig`),
  the same for every run;
- a Job per run (`render_run_job`; `spark.mode: local`): one pod running the batch job with Spark
  in local mode, sized from `spec.spark` (`executorCores` cores, `executorMemory`), given the
  run's name and output. `backoffLimit` retries a failed pod, and each retry resumes where the
  last stopped; a pod failure policy ends the Job at once when the job exits because of its
  budget, since a retry would be refused again;
- or a SparkApplication per run (`spark.mode: spark-operator`): the same command on the driver,
  `executors` executor pods, `backoffLimit` driver retries (a retry refused by the budget exits
  at once, before any model call).

A one-off BatchJob has one run, `<name>-run`, writing to `spec.output.uri`; a scheduled one a run
per time (`schedule.run_name`), each writing under `<output.uri>/run=<run name>`.
"""

from __future__ import annotations

from typing import Any

from tiers.api import batch, common
from tiers.operator.manifests import (
    gateway,
    labels,
    model_client,
    network_policies,
    redis,
    security,
    serving_tls,
    spark_application,
    stats_store,
    telemetry,
)
from tiers.runtime import sparkjars
from tiers.runtime.batch import config, progress

CONFIG = labels.Component(app="tiers-batch-job", role="batch-config", suffix="batch")
RUN = labels.Component(app="tiers-batch-job", role="batch-run", suffix="run")
STATS = labels.Component(app="tiers-redis", role="stats", suffix="batch-stats", port=redis.PORT)
"""The BatchJob's own Redis for its runs' progress and stats, however it calls its model."""
RUN_LABEL = "tiers.dev/run"
SCHEDULED_ANNOTATION = "tiers.dev/scheduled-time"
CONTAINER = "batch"
CONFIG_DIR = "/etc/tiers"
CONFIG_FILE = "batch.json"
BUDGET_EXIT_CODES = (progress.EXIT_CODES["OverBudget"], progress.EXIT_CODES["BudgetSpent"])


def job_config(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    *,
    stats_redis_url: str | None,
    endpoint_model: str | None,
    endpoint_tls: bool = False,
    endpoint_outside_url: str | None = None,
    default_telemetry: common.Telemetry | None = None,
) -> config.BatchJobConfig:
    """The batch job's config; each run's Job names the run and its output on the command line.
    Its runs' spans go where spec.telemetry says, else to the chart's `default_telemetry`. A run
    on Databricks, outside the cluster, calls an endpointRef at `endpoint_outside_url` (its
    `spec.expose` host) where it has one."""
    local = spec.engine == "spark" and spec.spark.mode == "local"
    formats = (spec.input.format, spec.output.format)
    return config.BatchJobConfig(
        job=f"{owner.namespace}/{owner.name}",
        run=RUN.name(owner),
        input=config.InputConfig(
            uri=spec.input.uri, format=spec.input.format, id_field=spec.input.id_field
        ),
        output=config.OutputConfig(uri=spec.output.uri, format=spec.output.format),
        model=model_client.model_call(
            owner,
            spec.model,
            endpoint_model=endpoint_model,
            endpoint_tls=endpoint_tls,
            outside_url=endpoint_outside_url if spec.engine == "databricks" else None,
        ),
        max_usd=None if spec.budget is None else spec.budget.max_usd,
        stats_redis_url=stats_redis_url,
        stats_redis_password_env=None if stats_redis_url is None else stats_store.PASSWORD_ENV,
        # Under the Spark Operator spark-submit gives the master; on Databricks, the cluster.
        master=f"local[{spec.spark.executor_cores}]" if local else None,
        # Delta Lake's jars: the image's, in a local run; on the Spark Operator's classpath
        # (spark_application); on Databricks, the cluster's own.
        jars=sparkjars.IMAGE_JARS if local and "delta" in formats else (),
        tracing=telemetry.tracing(spec.telemetry or default_telemetry, service_name="tiers-batch"),
    )


def render_config_map(
    owner: labels.Owner, spec: batch.BatchJobSpec, settings: config.BatchJobConfig
) -> dict[str, Any]:
    data = {CONFIG_FILE: settings.model_dump_json(indent=2)}
    if spec.spark.mode == "spark-operator":
        data[spark_application.LAUNCHER_KEY] = spark_application.launcher("tiers.runtime.batch")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": CONFIG.metadata(owner),
        "data": data,
    }


def render_run(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    configmap: dict[str, Any],
    *,
    run: str,
    image: str,
    scheduled_time: str | None = None,
) -> dict[str, Any]:
    """The run's Job, or its SparkApplication with `spark.mode: spark-operator`."""
    if spec.spark.mode == "spark-operator":
        return render_run_spark_application(
            owner, spec, configmap, run=run, image=image, scheduled_time=scheduled_time
        )
    return render_run_job(
        owner, spec, configmap, run=run, image=image, scheduled_time=scheduled_time
    )


def render_run_spark_application(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    configmap: dict[str, Any],
    *,
    run: str,
    image: str,
    scheduled_time: str | None = None,
) -> dict[str, Any]:
    volumes, mounts = _volumes(owner, spec)
    app = spark_application.render_spark_application(
        owner, RUN, name=run, image=spec.spark.image or image,
        extra_labels={RUN_LABEL: run},
        arguments=[_command(spec), *run_arguments(spec, run)], config_dir=CONFIG_DIR,
        volumes=volumes, driver_mounts=mounts, executor_mounts=mounts[1:],
        env=run_env(owner, spec), digest=labels.config_hash(configmap["data"]),
        executors=spec.spark.executors, cores=spec.spark.executor_cores,
        memory=spec.spark.executor_memory, memory_field="spec.spark.executorMemory",
        suspend=False, restart_policy=spark_application.on_failure(spec.backoff_limit),
        spark_conf=config.SPARK_CONF,
    )  # fmt: skip
    if scheduled_time is not None:
        app["metadata"]["annotations"] = {SCHEDULED_ANNOTATION: scheduled_time}
    return app


def _command(spec: batch.BatchJobSpec) -> str:
    return "estimate" if spec.dry_run else "run"


def _volumes(
    owner: labels.Owner, spec: batch.BatchJobSpec
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The config (read-only; the driver's only), a writable /tmp (the root filesystem is
    read-only), `spec.volume`, where the input and output may live, and for an endpointRef the
    CA its gateway publishes when it serves https (an optional ConfigMap: none without tls)."""
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG.name(owner)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if spec.volume is not None:
        claim = {"claimName": spec.volume.claim_name}
        volumes.append({"name": "data", "persistentVolumeClaim": claim})
        mounts.append({"name": "data", "mountPath": spec.volume.mount_path})
    ref = spec.model.endpoint_ref
    if ref is not None:
        endpoint = labels.Ref(ref.name, owner.namespace)
        volumes.append(serving_tls.client_volume(endpoint, gateway.COMPONENT))
        mounts.append(serving_tls.client_mount())
    return volumes, mounts


def render_stats_redis(
    owner: labels.Owner,
    *,
    password: str | None,
    network_policy: network_policies.Settings | None = None,
) -> list[dict[str, Any]]:
    """The Redis that keeps the runs' progress and stats; its password is in a Secret that the
    handler generates once (`redis.render_password_secret(..., component=STATS)`), and goes on
    its pods as a digest only, so that a re-made Secret restarts it with the new one. With
    `network_policy` enabled, a NetworkPolicy admits the runs' pods and the operator only."""
    server = redis.render_deployment(owner, component=STATS, size=redis.STATS)
    if password is not None:
        labels.stamp_secret_hash(server, password)
    children = [server, redis.render_service(owner, component=STATS)]
    if network_policy is not None and network_policy.enabled:
        children.append(
            network_policies.render_redis_policy(
                owner, redis=STATS, clients=(RUN,), settings=network_policy
            )
        )
    return children


def run_env(owner: labels.Owner, spec: batch.BatchJobSpec) -> list[dict[str, Any]]:
    """A run's env: the backend's key and the stats Redis's password, both by reference."""
    stats = redis.password_env(owner, stats_store.PASSWORD_ENV, component=STATS)
    return [*model_client.key_env(owner, spec.model), stats]


def one_off_run_name(owner: labels.Named) -> str:
    return RUN.name(owner)


def run_output_uri(spec: batch.BatchJobSpec, run: str) -> str:
    """Where a run writes: the output itself for a one-off job, a folder per run otherwise."""
    if spec.schedule is None:
        return spec.output.uri
    return f"{spec.output.uri.rstrip('/')}/run={run}"


def run_arguments(spec: batch.BatchJobSpec, run: str) -> list[str]:
    """What the batch job is told besides `run` or `estimate`: the config, the run, its output."""
    return [
        "--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--run", run,
        "--output", run_output_uri(spec, run),
    ]  # fmt: skip


def render_run_job(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    configmap: dict[str, Any],
    *,
    run: str,
    image: str,
    scheduled_time: str | None = None,
) -> dict[str, Any]:
    """The Job of one run; `configmap` is `render_config_map`'s (its hash goes on the pod)."""
    command = _command(spec)
    volumes, mounts = _volumes(owner, spec)
    container = {
        "name": CONTAINER,
        "image": spec.spark.image or image,
        "command": ["python", "-m", "tiers.runtime.batch", command, *run_arguments(spec, run)],
        "env": run_env(owner, spec),
        "resources": {
            "requests": {
                "cpu": str(spec.spark.executor_cores),
                "memory": spec.spark.executor_memory,
            },
            "limits": {"memory": spec.spark.executor_memory},
        },
        "volumeMounts": mounts,
        "securityContext": security.container_security_context(security.NONROOT_UID),
    }
    metadata = RUN.metadata(owner)
    metadata["name"] = run
    metadata["labels"] = {**metadata["labels"], RUN_LABEL: run}
    if scheduled_time is not None:
        metadata["annotations"] = {SCHEDULED_ANNOTATION: scheduled_time}
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": list(BUDGET_EXIT_CODES),
                    },
                },
                # A pod evicted or preempted is not the run's fault: retried without counting.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
        "template": {
            "metadata": {
                "labels": {**RUN.labels(owner), RUN_LABEL: run},
                "annotations": {
                    labels.CONFIG_HASH_ANNOTATION: labels.config_hash(configmap["data"])
                },
            },
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": security.pod_security_context(security.NONROOT_UID),
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
