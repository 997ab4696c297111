"""The batch job as a Databricks Spark Python task.

The operator uploads a launcher of two lines to the workspace (the task's `python_file`), which
calls `main` here with the task's parameters; the code itself is the tiers wheel, installed on
the cluster as the task's library. The parameters carry no secret:

    --secret-env TIERS_MODEL_API_KEY=<scope>/<key>   (repeated: read with dbutils.secrets)
    --config-json '{...BatchJobConfig...}'
    -- run --run <run name> --output <output URI>     (the batch job's own command line)

Each secret is read from the workspace's secret scope (`databricks.sdk.runtime.dbutils`: the
cluster's own on Databricks, the REST API with the task's credentials elsewhere) into the
variable the config names, so the job finds its keys where a Kubernetes pod finds them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile

from tiers.runtime.batch import cli


def parse(argv: list[str]) -> tuple[dict[str, tuple[str, str]], str, list[str]]:
    """The secrets (variable to scope and key), the config's JSON, and the job's own arguments."""
    parser = argparse.ArgumentParser(prog="tiers-databricks-task")
    parser.add_argument("--secret-env", action="append", default=[], metavar="NAME=SCOPE/KEY")
    parser.add_argument("--config-json", required=True)
    parser.add_argument("job", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    secrets = {}
    for entry in args.secret_env:
        name, _, where = entry.partition("=")
        scope, _, key = where.partition("/")
        if not name or not scope or not key:
            parser.error(f"--secret-env {entry!r}: expected NAME=SCOPE/KEY")
        secrets[name] = (scope, key)
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    return secrets, args.config_json, job


def main(argv: list[str]) -> None:
    secrets, config_json, job = parse(argv)
    if secrets:
        from databricks.sdk.runtime import dbutils

        for name, (scope, key) in secrets.items():
            os.environ[name] = dbutils.secrets.get(scope, key)
    with tempfile.TemporaryDirectory(prefix="tiers-batch-") as folder:
        path = pathlib.Path(folder) / "batch.json"
        path.write_text(config_json)
        cli.main([*job[:1], "--config", str(path), *job[1:]])
