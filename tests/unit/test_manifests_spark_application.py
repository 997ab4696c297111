"""`engine: spark-operator`: the streaming job rendered as a Spark Operator SparkApplication, and
StreamingReady read from the state the Spark Operator writes. No cluster."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest

from tiers import api
from tiers.operator import stream_status
from tiers.operator.manifests import labels, spark_application, stream_children
from tiers.runtime.stream import config

ROOT = pathlib.Path(__file__).resolve().parents[2]
OWNER = labels.Owner(
    api_version=api.API_VERSION,
    kind=api.STREAM_PIPELINE.kind,
    name="reviews",
    namespace="shop",
    uid="6a1b7c2d-0e3f-4a5b-8c9d-0e1f2a3b4c5d",
)
IMAGE = "tiers:0.1.0"


def spec(**fields: Any) -> api.StreamPipelineSpec:
    return api.StreamPipelineSpec.model_validate(
        {
            "kafka": {"bootstrapServers": "kafka:9092"},
            "topics": {"input": {"name": "in"}, "output": {"name": "out"},
                       "deadLetter": {"name": "dlq"}},
            "model": {
                "backend": {"name": "openai", "provider": "openai", "model": "gpt-4o-mini",
                            "apiKeySecretRef": {"name": "keys", "key": "openai"}},
                "prompt": "Summarize: {text}",
            },
            "checkpoint": {"volumeSize": "1Gi"},
            "engine": "spark-operator",
            "spark": {"cores": 3, "memory": "4Gi"},
            **fields,
        }
    )  # fmt: skip


def render(pipeline: api.StreamPipelineSpec) -> list[dict[str, Any]]:
    return stream_children.desired_children(
        OWNER, pipeline, image=IMAGE, stats_redis_url=None,
        endpoint_model=None,
    )  # fmt: skip


def the_app(children: list[dict[str, Any]]) -> dict[str, Any]:
    return next(child for child in children if child["kind"] == "SparkApplication")


def test_the_job_is_a_spark_application_applied_last_and_the_push_gateway_a_deployment() -> None:
    children = render(spec())
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == [
        ("ConfigMap", "reviews-stream"),
        ("PersistentVolumeClaim", "reviews-stream"),
        ("Deployment", "reviews-push"),
        ("Service", "reviews-push"),
        ("Deployment", "reviews-stream-stats"),
        ("Service", "reviews-stream-stats"),
        ("SparkApplication", "reviews-stream"),
    ]
    app = children[-1]
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert app["metadata"]["ownerReferences"] == [labels.owner_reference(OWNER)]


def test_the_deployment_engine_renders_no_spark_application() -> None:
    kinds = [c["kind"] for c in render(spec(engine="deployment"))]
    assert "SparkApplication" not in kinds and kinds.count("Deployment") == 3


def test_the_driver_runs_the_same_command_as_the_deployment_engine(tmp_path: pathlib.Path) -> None:
    children = render(spec())
    app, configmap = the_app(children), children[0]
    assert (app["spec"]["type"], app["spec"]["mode"]) == ("Python", "cluster")
    assert app["spec"]["mainApplicationFile"] == "local:///etc/tiers/launch.py"
    assert app["spec"]["arguments"] == ["job", "--config", "/etc/tiers/stream.json"]
    deployment = next(c for c in render(spec(engine="deployment")) if c["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["python", "-m", "tiers.runtime.stream", *app["spec"]["arguments"]]
    # The launcher in the ConfigMap is `python -m tiers.runtime.stream`, arguments and all.
    launcher = tmp_path / "launch.py"
    launcher.write_text(configmap["data"]["launch.py"])
    ran = subprocess.run(
        [sys.executable, str(launcher), "job", "--help"], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert "usage: python -m tiers.runtime.stream job" in ran.stdout


def test_spark_version_is_the_pinned_pyspark() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [re.fullmatch(r"pyspark==(\S+)", d) for d in pyproject["project"]["dependencies"]]
    assert [pin.group(1) for pin in pins if pin] == [spark_application.SPARK_VERSION]
    assert the_app(render(spec()))["spec"]["sparkVersion"] == spark_application.SPARK_VERSION


def test_cores_and_memory_come_from_spec_spark() -> None:
    app = the_app(render(spec(spark={"cores": 3, "memory": "4Gi", "image": "spark-tiers:4.2"})))
    driver, executor = app["spec"]["driver"], app["spec"]["executor"]
    assert (executor["instances"], executor["cores"], executor["memory"]) == (1, 3, "4g")
    assert (driver["cores"], driver["memory"]) == (1, "4g")
    assert app["spec"]["image"] == "spark-tiers:4.2"
    assert the_app(render(spec(spark={"memory": "512Mi"})))["spec"]["executor"]["memory"] == "512m"


def test_a_spark_memory_that_is_no_kubernetes_quantity_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.spark\.memory '2G'"):
        spark_application.spark_memory("2G")


def test_a_stream_restarts_always_with_speculation_off() -> None:
    app = the_app(render(spec()))
    assert app["spec"]["restartPolicy"]["type"] == "Always"
    conf = app["spec"]["sparkConf"]
    assert conf["spark.speculation"] == "false"
    assert {k: conf[k] for k in config.SPARK_CONF} == dict(config.SPARK_CONF)
    assert conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"]


def test_the_driver_mounts_config_and_checkpoint_and_both_get_the_api_key() -> None:
    app = the_app(render(spec()))["spec"]
    volumes = {v["name"]: v for v in app["volumes"]}
    assert volumes["config"]["configMap"] == {"name": "reviews-stream"}
    assert volumes["checkpoint"]["persistentVolumeClaim"] == {"claimName": "reviews-stream"}
    mounts = {m["name"]: m["mountPath"] for m in app["driver"]["volumeMounts"]}
    assert mounts == {"config": "/etc/tiers", "tmp": "/tmp",
                      "checkpoint": "/var/lib/tiers/checkpoint"}  # fmt: skip
    assert [m["name"] for m in app["executor"]["volumeMounts"]] == ["tmp"]
    key = {"secretKeyRef": {"name": "keys", "key": "openai"}}
    for role in ("driver", "executor"):
        stats = {"secretKeyRef": {"name": "reviews-stream-stats", "key": "password"}}
        assert [e["valueFrom"] for e in app[role]["env"]] == [key, stats]
        assert app[role]["securityContext"]["readOnlyRootFilesystem"] is True


def test_spark_submit_gives_master_and_jars_so_the_config_does_not() -> None:
    settings = stream_children.job_config(OWNER, spec(), stats_redis_url=None, endpoint_model=None)
    assert (settings.master, settings.jars) == (None, ())
    local = stream_children.job_config(
        OWNER, spec(engine="deployment"), stats_redis_url=None,
        endpoint_model=None,
    )  # fmt: skip
    assert local.master == "local[3]" and local.jars


def test_suspend_and_a_new_config_reach_the_spark_application() -> None:
    app = the_app(render(spec(suspend=True)))
    assert app["spec"]["suspend"] is True
    hashes = {
        the_app(render(spec(trigger={"intervalMs": ms})))["spec"]["driver"]["annotations"][
            "tiers.dev/config-hash"
        ]
        for ms in (500, 1000)
    }
    assert len(hashes) == 2, "a changed config changes the spec, so the job is resubmitted"


@pytest.mark.parametrize(
    ("state", "status", "reason"),
    [
        ("RUNNING", "True", "Running"),
        ("SUBMITTED", "False", "Starting"),
        ("PENDING_RERUN", "False", "Starting"),
        ("", "False", "Starting"),
        ("FAILED", "False", "Failed"),
        ("SUBMISSION_FAILED", "False", "SubmissionFailed"),
        ("SUSPENDED", "False", "Suspended"),
        ("SOMETHING_NEW", "Unknown", "Unknown"),
    ],
)
def test_streaming_ready_follows_the_application_state(
    state: str, status: str, reason: str
) -> None:
    app = {"status": {"applicationState": {"state": state}}}
    verdict = stream_status.spark_application_verdict(app)
    assert (verdict.status, verdict.reason) == (status, reason)


def test_a_failure_carries_the_spark_operators_error_message() -> None:
    app = {"status": {"applicationState": {"state": "FAILED", "errorMessage": "driver OOMKilled"}}}
    verdict = stream_status.spark_application_verdict(app)
    assert verdict.status == "False" and "driver OOMKilled" in verdict.message


def test_an_application_without_status_is_starting_and_a_missing_one_unknown() -> None:
    assert stream_status.spark_application_verdict({"spec": {}}).reason == "Starting"
    assert stream_status.spark_application_verdict(None).status == "Unknown"


def test_a_missing_spark_operator_names_the_crd_and_how_to_install_it() -> None:
    verdict = stream_status.spark_operator_missing("shop")
    assert (verdict.status, verdict.reason) == ("False", "SparkOperatorMissing")
    assert "sparkapplications.sparkoperator.k8s.io" in verdict.message
    assert "Helm chart" in verdict.message and "spark.jobNamespaces={shop}" in verdict.message


def test_a_remade_stats_password_resubmits_the_job() -> None:
    def driver_hash(password: str) -> str:
        app = the_app(
            stream_children.desired_children(
                OWNER, spec(), image=IMAGE, stats_redis_url=None, endpoint_model=None,
                stats_password=password,
            )
        )  # fmt: skip
        assert password not in str(app)
        return str(app["spec"]["driver"]["annotations"]["tiers.dev/config-hash"])

    assert driver_hash("pw-1") != driver_hash("pw-2")
