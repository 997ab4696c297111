"""The Kubeflow Spark Operator's SparkApplication CRD, for tests of `engine: spark-operator`.

No Spark Operator runs here (its controller needs container images); what the tests need is the
real CRD, so that the apiserver validates what the operator renders as the Spark Operator's own
schema does. The version is pinned by the wrapper module `tools/spark-operator/go.mod` (and
`go.sum`), fetched from the Go module proxy like the control plane's sources, and the CRD file is
copied into `~/.cache/tiers/crds/spark-operator-<version>/`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

from tiers.devenv import paths, toolchain

MODULE = "github.com/kubeflow/spark-operator/v2"
CRD_FILE = "charts/spark-operator-chart/crds/sparkoperator.k8s.io_sparkapplications.yaml"


def module_dir() -> pathlib.Path:
    return paths.repo_root() / "tools" / "spark-operator"


def version() -> str:
    return toolchain.pinned_version(module_dir() / "go.mod", MODULE)


def sparkapplication_crd() -> pathlib.Path:
    """The CRD file of the pinned version, fetched once into the cache."""
    target = (
        paths.cache_dir() / "crds" / f"spark-operator-{version()}" / pathlib.Path(CRD_FILE).name
    )
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not on PATH: install Go 1.26 to fetch the Spark Operator's CRD")
    # Only this module: its go.sum entry verifies it; its own dependencies are never needed.
    result = subprocess.run(
        [go, "mod", "download", "-json", MODULE],
        cwd=module_dir(),
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"go mod download {MODULE} failed:\n{(result.stdout + result.stderr)[-4000:]}"
        )
    source = pathlib.Path(json.loads(result.stdout)["Dir"]) / CRD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.rename(target)
    return target
