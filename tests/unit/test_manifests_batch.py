"""The children a BatchJob renders: the batch job's config and a Job per run."""

from __future__ import annotations

from typing import Any

from tiers.api import batch
from tiers.operator.manifests import batch_children, labels, telemetry
from tiers.runtime import sparkjars
from tiers.runtime.batch import config
from tiers.runtime.modelcall import config as modelcall_config

OWNER = labels.Owner(
    api_version="tiers.dev/v1alpha1", kind="BatchJob", name="triage", namespace="ops", uid="u-1"
)


def spec(**changes: Any) -> batch.BatchJobSpec:
    fields: dict[str, Any] = {
        "engine": "spark",
        "input": {"uri": "s3a://b/tickets/", "format": "jsonl"},
        "output": {"uri": "s3a://b/triage/", "format": "parquet"},
        "model": {
            "backend": {
                "name": "openai", "provider": "openai", "model": "gpt-4o-mini",
                "apiKeySecretRef": {"name": "openai", "key": "api-key"},
            },
            "prompt": "Classify: {body}",
        },
        "spark": {"executorCores": 3, "executorMemory": "6Gi"},
        **changes,
    }  # fmt: skip
    return batch.BatchJobSpec.model_validate(fields)


def rendered(
    **changes: Any,
) -> tuple[config.BatchJobConfig, dict[str, Any], dict[str, Any]]:
    the_spec = spec(**changes)
    settings = batch_children.job_config(
        OWNER, the_spec, stats_redis_url="redis://r:6379/0", endpoint_model=None
    )
    configmap = batch_children.render_config_map(OWNER, the_spec, settings)
    job = batch_children.render_run_job(OWNER, the_spec, configmap, run="triage-run", image="t:1")
    return settings, configmap, job


def test_the_config_names_the_job_its_data_model_and_budget() -> None:
    settings, configmap, _ = rendered(budget={"maxUSD": "25"})
    assert settings.job == "ops/triage"
    assert (settings.input.uri, settings.output.format) == ("s3a://b/tickets/", "parquet")
    assert settings.model.model == "gpt-4o-mini"
    assert str(settings.max_usd) == "25"
    assert settings.master == "local[3]"
    loaded = config.BatchJobConfig.model_validate_json(configmap["data"]["batch.json"])
    assert loaded == settings
    assert configmap["metadata"]["name"] == "triage-batch"


def test_a_delta_table_brings_delta_lakes_jars_from_the_image_into_a_local_run() -> None:
    delta = {"output": {"uri": "s3a://b/scored", "format": "delta"}}
    local, _, _ = rendered(**delta)
    assert local.delta and local.jars == (f"{sparkjars.IMAGE_DIR}/*.jar",)
    assert rendered()[0].jars == ()  # no Delta table, no jars to load
    on_spark_operator = batch_children.job_config(
        OWNER, spec(**delta, spark={"mode": "spark-operator"}),
        stats_redis_url=None, endpoint_model=None,
    )  # fmt: skip
    assert on_spark_operator.jars == ()  # on the driver's and executors' classpath already


def test_the_key_reaches_the_pod_by_reference_never_in_the_config() -> None:
    _, configmap, job = rendered()
    assert "api-key" not in configmap["data"]["batch.json"].replace('"TIERS_MODEL_API_KEY"', "")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    key, stats = container["env"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "openai", "key": "api-key"}
    assert stats["valueFrom"]["secretKeyRef"] == {"name": "triage-batch-stats", "key": "password"}


def test_a_run_job_runs_the_batch_job_for_its_run_and_output_sized_from_spark() -> None:
    _, _, job = rendered()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:4] == ["python", "-m", "tiers.runtime.batch", "run"]
    assert container["command"][4:] == [
        "--config", "/etc/tiers/batch.json", "--run", "triage-run", "--output", "s3a://b/triage/",
    ]  # fmt: skip
    assert container["resources"]["requests"] == {"cpu": "3", "memory": "6Gi"}
    assert job["metadata"]["name"] == "triage-run"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_a_budget_exit_ends_the_job_without_retries() -> None:
    _, _, job = rendered(backoffLimit=5)
    assert job["spec"]["backoffLimit"] == 5
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [3, 4]


def test_a_dry_run_only_estimates() -> None:
    _, _, job = rendered(dryRun=True)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][3] == "estimate"


def test_scheduled_runs_each_write_their_own_folder() -> None:
    the_spec = spec(schedule="0 2 * * *")
    assert batch_children.run_output_uri(the_spec, "triage-29000000") == (
        "s3a://b/triage/run=triage-29000000"
    )
    assert batch_children.run_output_uri(spec(), "triage-run") == "s3a://b/triage/"


def test_the_pod_is_locked_down_and_rolls_with_its_config() -> None:
    _, configmap, job = rendered(activeDeadlineSeconds=3600)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations[labels.CONFIG_HASH_ANNOTATION] == labels.config_hash(configmap["data"])
    assert job["spec"]["activeDeadlineSeconds"] == 3600


def test_with_the_spark_operator_a_run_is_a_spark_application_of_the_same_command() -> None:
    the_spec = spec(spark={"mode": "spark-operator", "executors": 4, "executorCores": 2,
                           "executorMemory": "6Gi"}, backoffLimit=2)  # fmt: skip
    settings = batch_children.job_config(OWNER, the_spec, stats_redis_url=None, endpoint_model=None)
    assert settings.master is None  # spark-submit gives it
    configmap = batch_children.render_config_map(OWNER, the_spec, settings)
    assert "tiers.runtime.batch" in configmap["data"]["launch.py"]
    app = batch_children.render_run(
        OWNER, the_spec, configmap, run="triage-29000000", image="t:1",
        scheduled_time="2025-02-21T02:00:00+00:00",
    )  # fmt: skip
    assert (app["kind"], app["metadata"]["name"]) == ("SparkApplication", "triage-29000000")
    assert app["metadata"]["labels"][batch_children.RUN_LABEL] == "triage-29000000"
    assert app["metadata"]["annotations"][batch_children.SCHEDULED_ANNOTATION].startswith("2025")
    assert app["spec"]["arguments"][:2] == ["run", "--config"]
    assert app["spec"]["executor"]["instances"] == 4
    assert (app["spec"]["executor"]["cores"], app["spec"]["executor"]["memory"]) == (2, "6g")
    assert app["spec"]["restartPolicy"]["type"] == "OnFailure"
    assert app["spec"]["restartPolicy"]["onFailureRetries"] == 2
    assert app["spec"]["driver"]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "openai"


def test_locally_a_run_is_a_job() -> None:
    the_spec = spec()
    settings = batch_children.job_config(OWNER, the_spec, stats_redis_url=None, endpoint_model=None)
    configmap = batch_children.render_config_map(OWNER, the_spec, settings)
    assert "launch.py" not in configmap["data"]
    run = batch_children.render_run(OWNER, the_spec, configmap, run="triage-run", image="t:1")
    assert run["kind"] == "Job"


def test_a_batch_job_keeps_progress_in_a_password_protected_redis_of_its_own() -> None:
    server, service = batch_children.render_stats_redis(OWNER, password="pw-1")
    assert (server["kind"], server["metadata"]["name"]) == ("Deployment", "triage-batch-stats")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "triage-batch-stats", "key": "password",
    }  # fmt: skip
    assert "tiers.dev/secret-hash" in server["spec"]["template"]["metadata"]["annotations"]
    assert "pw-1" not in str(server)
    assert service["spec"]["ports"][0]["port"] == 6379
    settings = batch_children.job_config(
        OWNER, spec(), stats_redis_url="redis://triage-batch-stats.ns.svc:6379/0",
        endpoint_model=None,
    )  # fmt: skip
    assert settings.stats_redis_password_env == "TIERS_STATS_REDIS_PASSWORD"


def test_a_volume_is_mounted_in_the_run_pod_and_every_spark_pod() -> None:
    volume = {"claimName": "batches", "mountPath": "/var/lib/tiers/batch"}
    _, configmap, job = rendered(volume=volume)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "batches"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/var/lib/tiers/batch"} in mounts
    the_spec = spec(volume=volume, spark={"mode": "spark-operator"})
    app = batch_children.render_run(OWNER, the_spec, configmap, run="triage-run", image="t:1")
    for role in ("driver", "executor"):
        assert {"name": "data", "mountPath": "/var/lib/tiers/batch"} in app["spec"][role][
            "volumeMounts"
        ]
    # The config is the driver's alone, as before.
    assert all(m["name"] != "config" for m in app["spec"]["executor"]["volumeMounts"])


def test_a_jobs_telemetry_or_the_charts_reaches_its_runs_config() -> None:
    own = spec(
        telemetry={
            "otlpEndpoint": "http://team-collector:4318",
            "samplingRatio": "0.5",
            "maxQueueSpans": 64,
        }
    )
    settings = batch_children.job_config(OWNER, own, stats_redis_url=None, endpoint_model=None)
    assert settings.tracing is not None
    assert settings.tracing.max_queue_spans == 64
    assert settings.tracing.traces_url == "http://team-collector:4318/v1/traces"
    assert (settings.tracing.sample_ratio, settings.tracing.service_name) == (0.5, "tiers-batch")
    chart = telemetry.default_from({"TIERS_OTLP_ENDPOINT": "http://otel:4318"})
    settings = batch_children.job_config(
        OWNER, spec(), stats_redis_url=None, endpoint_model=None, default_telemetry=chart
    )
    assert settings.tracing is not None and settings.tracing.otlp_endpoint == "http://otel:4318"
    none = batch_children.job_config(OWNER, spec(), stats_redis_url=None, endpoint_model=None)
    assert none.tracing is None


def test_a_databricks_run_calls_its_endpoint_where_it_is_exposed_and_a_spark_run_inside() -> None:
    ref = {"endpointRef": {"name": "chat"}, "prompt": "Classify: {body}"}
    databricks = {"host": "https://x.cloud.databricks.com", "newCluster": {},
                  "tokenSecretRef": {"name": "d", "key": "t"}}  # fmt: skip
    outside = "https://chat.example.com/v1"

    def target(**changes: Any) -> modelcall_config.EndpointTarget:
        settings = batch_children.job_config(
            OWNER, spec(model=ref, **changes), stats_redis_url=None, endpoint_model="m",
            endpoint_tls=True, endpoint_outside_url=outside,
        )  # fmt: skip
        assert isinstance(settings.model.target, modelcall_config.EndpointTarget)
        return settings.model.target

    # A Databricks cluster is outside the cluster: the public URL, the system's CAs.
    on_databricks = target(engine="databricks", databricks=databricks, input={"uri": "dbfs:/i"},
                           output={"uri": "dbfs:/o"})  # fmt: skip
    assert (on_databricks.url, on_databricks.ca_file) == (outside, None)
    # A run on this cluster keeps the Service and the CA the operator publishes.
    inside = target()
    assert inside.url == "https://chat-gateway.ops.svc:8080/v1" and inside.ca_file is not None
