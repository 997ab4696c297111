"""What the operator asks Databricks for a BatchJob's run (`engine: databricks`): pure.

A run's attempt is one-time run (`jobs/runs/submit`) of a single Spark Python task:

- the code is the tiers wheel, a task library (`spec.databricks.wheel`; unset, the cluster has
  tiers installed), and the task's `python_file` is a launcher of two lines (`LAUNCHER`) that
  the operator uploads to `spec.databricks.workspacePath` before it submits;
- the batch job's config (`BatchJobConfig`, no secret in it) and the run's own arguments are the
  task's parameters (`tiers.runtime.batch.databricks_task` reads them);
- every key the job needs (the model's, the stats Redis's password) is copied by the operator
  from its Kubernetes Secret into the Databricks secret scope `spec.databricks.secretScope`,
  and the task is told only where each is (`--secret-env NAME=<scope>/<key>`): it reads them
  with `dbutils.secrets.get`, on a new job cluster and an existing cluster alike;
- the cluster is a new job cluster (`spec.databricks.newCluster`) or an existing one;
- the `idempotency_token` is derived from the object's uid, its generation and the run and
  attempt, so that a submit repeated after the operator died mid-request makes no second run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tiers.api import batch
from tiers.operator.manifests import labels
from tiers.runtime.batch import config

LAUNCHER_FILE = "tiers_batch_launcher.py"
LAUNCHER = (
    '"""Runs a Tiers BatchJob\'s batch job (uploaded by the Tiers operator)."""\n'
    "import sys\n\n"
    "from tiers.runtime.batch import databricks_task\n\n"
    "databricks_task.main(sys.argv[1:])\n"
)
TASK_KEY = "score"
TAG = "tiers-batchjob"


def idempotency_token(uid: str, generation: int, run: str, attempt: int) -> str:
    """At most 64 characters, as the Jobs API allows: the same for the same attempt only."""
    return hashlib.sha256(f"{uid}/{generation}/{run}/{attempt}".encode()).hexdigest()


def launcher_path(settings: batch.Databricks) -> str:
    return f"{settings.workspace_path.rstrip('/')}/{LAUNCHER_FILE}"


def secret_key(owner: labels.Owner, env: str) -> str:
    """The key in the secret scope holding the value of `env` for this BatchJob."""
    return f"{owner.namespace}.{owner.name}.{env.lower()}"


def secret_envs(owner: labels.Owner, env: list[dict[str, Any]]) -> dict[str, str]:
    """The variables of a run's env (`batch_children.run_env`) that come from Secrets, each with
    its key in the secret scope."""
    return {
        entry["name"]: secret_key(owner, entry["name"])
        for entry in env
        if (entry.get("valueFrom") or {}).get("secretKeyRef")
    }


def run_name(owner: labels.Named, run: str, attempt: int) -> str:
    """The Databricks run's name: the BatchJob, its run and the attempt, by which a submit whose
    answer was lost is found again (`databricks_client.Workspace.find_run`)."""
    return f"{owner.namespace}/{owner.name} {run} attempt {attempt}"


def submit_request(
    owner: labels.Owner,
    spec: batch.BatchJobSpec,
    settings: config.BatchJobConfig,
    *,
    run: str,
    attempt: int,
    arguments: list[str],
    secrets: Mapping[str, str],
    token: str,
) -> dict[str, Any]:
    """The body of `jobs/runs/submit` for one attempt of a run; `arguments` are the batch job's
    own (`run --run ... --output ...`), `secrets` the variables and their keys in the scope."""
    databricks = spec.databricks
    assert databricks is not None, "the CRD requires spec.databricks with engine databricks"
    parameters = [
        *(f"--secret-env={name}={databricks.secret_scope}/{key}" for name, key in secrets.items()),
        f"--config-json={settings.model_dump_json()}",
        "--",
        *arguments,
    ]
    task: dict[str, Any] = {
        "task_key": TASK_KEY,
        "spark_python_task": {"python_file": launcher_path(databricks), "parameters": parameters},
    }
    if databricks.new_cluster is not None:
        cluster = databricks.new_cluster
        task["new_cluster"] = {
            "spark_version": cluster.spark_version,
            "node_type_id": cluster.node_type_id,
            "num_workers": cluster.num_workers,
            "spark_conf": dict(config.SPARK_CONF),
            "custom_tags": {TAG: f"{owner.namespace}.{owner.name}"},
        }
    else:
        task["existing_cluster_id"] = databricks.existing_cluster_id
    if databricks.wheel is not None:
        task["libraries"] = [{"whl": databricks.wheel}]
    body: dict[str, Any] = {
        "run_name": run_name(owner, run, attempt),
        "tasks": [task],
        "idempotency_token": token,
    }
    if spec.active_deadline_seconds is not None:
        body["timeout_seconds"] = spec.active_deadline_seconds
    return body
