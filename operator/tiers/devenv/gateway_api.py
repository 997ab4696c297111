"""The Gateway API's standard CRDs (GatewayClass, Gateway, HTTPRoute, BackendTLSPolicy), for
tests of `spec.expose.httpRoute`.

No Gateway controller runs here; what the tests need is the real CRDs, so that the apiserver
validates the HTTPRoutes the operator renders as the Gateway API's own schema does. The version is
pinned by the wrapper module `tools/gateway-api/go.mod` (and `go.sum`), fetched from the Go module
proxy like the Spark Operator's CRD (`spark_operator`), and the files are copied into
`~/.cache/tiers/crds/gateway-api-<version>/`.
"""

from __future__ import annotations

import pathlib

from tiers.devenv import paths, toolchain

MODULE = "sigs.k8s.io/gateway-api"
PLURALS = ("gatewayclasses", "gateways", "httproutes", "backendtlspolicies")
CRD_FILES = tuple(
    f"config/crd/standard/gateway.networking.k8s.io_{plural}.yaml" for plural in PLURALS
)
CRD_NAMES = tuple(f"{plural}.gateway.networking.k8s.io" for plural in PLURALS)


def module_dir() -> pathlib.Path:
    return paths.repo_root() / "tools" / "gateway-api"


def standard_crds() -> list[pathlib.Path]:
    """The CRD files of the pinned version, fetched once into the cache."""
    return [toolchain.module_file(module_dir(), MODULE, file) for file in CRD_FILES]
