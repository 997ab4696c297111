"""The streaming job as a Spark Operator `SparkApplication` (`engine: spark-operator`): pure.

The Kubeflow Spark Operator turns it into a driver pod (spark-submit in cluster mode) and executor
pods. The driver runs the same command as the Deployment engine's pod, `python -m
tiers.runtime.stream job --config ...`, through a launcher script kept in the job's ConfigMap
(spark-submit wants a Python file, and the image's site-packages path is not ours to know). The
config and checkpoint volumes are mounted on the driver: a stateless query's checkpoint (offsets
and commits) is written by the driver only, so a ReadWriteOnce claim is enough.
`manifests.stream_children` renders the volumes and calls `render_spark_application()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiers.api import stream
from tiers.operator.manifests import labels, security
from tiers.runtime.stream import config

API_VERSION = "sparkoperator.k8s.io/v1beta2"
KIND = "SparkApplication"
CRD_NAME = "sparkapplications.sparkoperator.k8s.io"
SPARK_VERSION = "4.2.0"
"""The pyspark the job is written against (pyproject pins it; a unit test holds them equal)."""
SERVICE_ACCOUNT = "spark-operator-spark"
"""The account the Spark Operator's Helm chart (release `spark-operator`) makes in each of its
`spark.jobNamespaces`, with the rights a driver needs to run its executor pods."""
LAUNCHER_KEY = "launch.py"
LAUNCHER = (
    '"""Runs `python -m tiers.runtime.stream` under spark-submit, with its arguments."""\n'
    "import runpy\n\n"
    'runpy.run_module("tiers.runtime.stream", run_name="__main__", alter_sys=True)\n'
)
JARS_CLASSPATH = "/opt/tiers/jars/*"
"""Spark's Kafka connector in the image, on the JVM classpath from the start: `spark.jars` set by
the job itself would come after spark-submit started the driver's JVM."""
RETRY_INTERVAL_S = 10


def render_spark_application(
    owner: labels.Owner,
    spec: stream.StreamPipelineSpec,
    component: labels.Component,
    *,
    image: str,
    arguments: Sequence[str],
    config_dir: str,
    volumes: Sequence[dict[str, Any]],
    driver_mounts: Sequence[dict[str, Any]],
    executor_mounts: Sequence[dict[str, Any]],
    env: Sequence[dict[str, Any]],
    digest: str,
) -> dict[str, Any]:
    """A SparkApplication that runs the job until it is deleted: `restartPolicy: Always`, since a
    stream has no end and a failed driver should come back on its checkpoint."""
    memory = spark_memory(spec.spark.memory)
    pod = {
        "labels": component.labels(owner),
        "env": list(env),
        "podSecurityContext": security.pod_security_context(security.NONROOT_UID),
        "securityContext": security.container_security_context(security.NONROOT_UID),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": component.metadata(owner),
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": spec.spark.image or image,
            "sparkVersion": SPARK_VERSION,
            "mainApplicationFile": f"local://{config_dir}/{LAUNCHER_KEY}",
            "arguments": list(arguments),
            "sparkConf": {
                **config.SPARK_CONF,
                "spark.driver.extraClassPath": JARS_CLASSPATH,
                "spark.executor.extraClassPath": JARS_CLASSPATH,
            },
            "restartPolicy": {
                "type": "Always",
                "onFailureRetryInterval": RETRY_INTERVAL_S,
                "onSubmissionFailureRetryInterval": RETRY_INTERVAL_S,
            },
            "suspend": spec.suspend,
            "volumes": list(volumes),
            "driver": {
                **pod,
                # The driver plans micro-batches; the tasks, and so the cores, are the executor's.
                "cores": 1,
                "memory": memory,
                "serviceAccount": SERVICE_ACCOUNT,
                # A new config changes the spec, and the Spark Operator resubmits the job.
                "annotations": {labels.CONFIG_HASH_ANNOTATION: digest},
                "volumeMounts": list(driver_mounts),
            },
            "executor": {
                **pod,
                "instances": 1,
                "cores": spec.spark.cores,
                "memory": memory,
                "volumeMounts": list(executor_mounts),
            },
        },
    }


def spark_memory(quantity: str) -> str:
    """A Kubernetes quantity of the spec (`2Gi`, `512Mi`) as Spark writes sizes (`2g`, `512m`)."""
    for suffix, spark_suffix in (("Gi", "g"), ("Mi", "m")):
        if quantity.endswith(suffix):
            return quantity.removesuffix(suffix) + spark_suffix
    raise ValueError(f"spec.spark.memory {quantity!r}: expected a number of Mi or Gi")
