"""A job as a Spark Operator `SparkApplication`: the streaming job (`engine: spark-operator`) and
the runs of a batch job (`spark.mode: spark-operator`). Pure.

The Kubeflow Spark Operator turns it into a driver pod (spark-submit in cluster mode) and executor
pods. The driver runs the same command as the pod of the other engine, e.g. `python -m
tiers.runtime.stream job --config ...`, through a launcher script kept in the job's ConfigMap
(spark-submit wants a Python file, and the image's site-packages path is not ours to know). The
config and checkpoint volumes are mounted on the driver: a stateless query's checkpoint (offsets
and commits) is written by the driver only, so a ReadWriteOnce claim is enough.
`manifests.stream_children` and `manifests.batch_children` render the volumes and call
`render_spark_application()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tiers.operator.manifests import labels, security
from tiers.runtime import sparkjars

API_VERSION = "sparkoperator.k8s.io/v1beta2"
KIND = "SparkApplication"
CRD_NAME = "sparkapplications.sparkoperator.k8s.io"
SPARK_VERSION = "4.2.0"
"""The pyspark the job is written against (pyproject pins it; a unit test holds them equal)."""
SERVICE_ACCOUNT = "spark-operator-spark"
"""The account the Spark Operator's Helm chart (release `spark-operator`) makes in each of its
`spark.jobNamespaces`, with the rights a driver needs to run its executor pods."""
LAUNCHER_KEY = "launch.py"


def launcher(module: str) -> str:
    """The Python file spark-submit runs: `python -m <module>` with the application's arguments."""
    return (
        f'"""Runs `python -m {module}` under spark-submit, with its arguments."""\n'
        "import runpy\n\n"
        f'runpy.run_module("{module}", run_name="__main__", alter_sys=True)\n'
    )


LAUNCHER = launcher("tiers.runtime.stream")
JARS_CLASSPATH = f"{sparkjars.IMAGE_DIR}/*"
"""Spark's Kafka connector in the image, on the JVM classpath from the start: `spark.jars` set by
the job itself would come after spark-submit started the driver's JVM."""
RETRY_INTERVAL_S = 10


ALWAYS = {
    "type": "Always",
    "onFailureRetryInterval": RETRY_INTERVAL_S,
    "onSubmissionFailureRetryInterval": RETRY_INTERVAL_S,
}
"""A stream has no end, and a failed driver should come back on its checkpoint."""


def on_failure(retries: int) -> dict[str, Any]:
    """A run-to-completion job (a batch run): a failed driver is retried `retries` times."""
    return {
        "type": "OnFailure" if retries > 0 else "Never",
        "onFailureRetries": retries,
        "onFailureRetryInterval": RETRY_INTERVAL_S,
        "onSubmissionFailureRetries": 3,
        "onSubmissionFailureRetryInterval": RETRY_INTERVAL_S,
    }


def render_spark_application(
    owner: labels.Owner,
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
    executors: int,
    cores: int,
    memory: str,
    memory_field: str = "spec.spark.memory",
    suspend: bool,
    restart_policy: Mapping[str, Any],
    spark_conf: Mapping[str, str],
    name: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A SparkApplication of `executors` executors of `cores` cores and `memory` (a Kubernetes
    quantity) each; `name` overrides the component's name (a batch job's run)."""
    spark_memory_size = spark_memory(memory, field=memory_field)
    pod_labels = {**component.labels(owner), **(extra_labels or {})}
    pod = {
        "labels": pod_labels,
        "env": list(env),
        "podSecurityContext": security.pod_security_context(security.NONROOT_UID),
        "securityContext": security.container_security_context(security.NONROOT_UID),
    }
    metadata = component.metadata(owner)
    metadata["labels"] = pod_labels
    if name is not None:
        metadata["name"] = name
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": image,
            "sparkVersion": SPARK_VERSION,
            "mainApplicationFile": f"local://{config_dir}/{LAUNCHER_KEY}",
            "arguments": list(arguments),
            "sparkConf": {
                **spark_conf,
                "spark.driver.extraClassPath": JARS_CLASSPATH,
                "spark.executor.extraClassPath": JARS_CLASSPATH,
            },
            "restartPolicy": dict(restart_policy),
            "suspend": suspend,
            "volumes": list(volumes),
            "driver": {
                **pod,
                # The driver plans the stages; the tasks, and so the cores, are the executors'.
                "cores": 1,
                "memory": spark_memory_size,
                "serviceAccount": SERVICE_ACCOUNT,
                # A new config changes the spec, and the Spark Operator resubmits the job.
                "annotations": {labels.CONFIG_HASH_ANNOTATION: digest},
                "volumeMounts": list(driver_mounts),
            },
            "executor": {
                **pod,
                "instances": executors,
                "cores": cores,
                "memory": spark_memory_size,
                "volumeMounts": list(executor_mounts),
            },
        },
    }


def spark_memory(quantity: str, *, field: str = "spec.spark.memory") -> str:
    """A Kubernetes quantity of the spec (`2Gi`, `512Mi`) as Spark writes sizes (`2g`, `512m`)."""
    for suffix, spark_suffix in (("Gi", "g"), ("Mi", "m")):
        if quantity.endswith(suffix):
            return quantity.removesuffix(suffix) + spark_suffix
    raise ValueError(f"{field} {quantity!r}: expected a number of Mi or Gi")
