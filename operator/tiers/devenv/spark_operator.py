"""The Kubeflow Spark Operator's SparkApplication CRD, for tests of `engine: spark-operator`.

No Spark Operator runs here (its controller needs container images); what the tests need is the
real CRD, so that the apiserver validates what the operator renders as the Spark Operator's own
schema does. The version is pinned by the wrapper module `tools/spark-operator/go.mod` (and
`go.sum`), fetched from the Go module proxy like the control plane's sources, and the CRD file is
copied into `~/.cache/tiers/crds/spark-operator-<version>/`.
"""

from __future__ import annotations

import pathlib

from tiers.devenv import paths, toolchain

MODULE = "github.com/kubeflow/spark-operator/v2"
CRD_FILE = "charts/spark-operator-chart/crds/sparkoperator.k8s.io_sparkapplications.yaml"


def module_dir() -> pathlib.Path:
    return paths.repo_root() / "tools" / "spark-operator"


def version() -> str:
    return toolchain.pinned_version(module_dir() / "go.mod", MODULE)


def sparkapplication_crd() -> pathlib.Path:
    """The CRD file of the pinned version, fetched once into the cache."""
    return toolchain.module_file(module_dir(), MODULE, CRD_FILE)
