"""The Gateway API's standard CRDs (GatewayClass, Gateway, HTTPRoute, BackendTLSPolicy), for
tests of `spec.expose.httpRoute`.

No Gateway controller runs here; what the tests need is the real CRDs, so that the apiserver
validates the HTTPRoutes the operator renders as the Gateway API's own schema does. The version is
pinned by the wrapper module `tools/gateway-api/go.mod` (and `go.sum`), fetched from the Go module
proxy like the Spark Operator's CRD (`spark_operator`), and the files are copied into
`~/.cache/tiers/crds/gateway-api-<version>/`. BackendTLSPolicy is also fetched as Gateway API
1.3 serves it (v1alpha3; 1.4 made it v1), from `tools/gateway-api-1.3`.
"""

from __future__ import annotations

import pathlib

from tiers.devenv import paths, toolchain

MODULE = "sigs.k8s.io/gateway-api"
PLURALS = ("gatewayclasses", "gateways", "httproutes", "backendtlspolicies")
CRD_NAMES = tuple(f"{plural}.gateway.networking.k8s.io" for plural in PLURALS)
V1ALPHA3_POLICY = "config/crd/experimental/gateway.networking.k8s.io_backendtlspolicies.yaml"
"""BackendTLSPolicy as Gateway API 1.2 and 1.3 serve it (experimental channel, v1alpha3 only),
pinned by `tools/gateway-api-1.3`."""


def module_dir() -> pathlib.Path:
    return paths.repo_root() / "tools" / "gateway-api"


def standard_crds(plurals: tuple[str, ...] = PLURALS) -> list[pathlib.Path]:
    """The CRD files of the pinned version, fetched once into the cache."""
    return [
        toolchain.module_file(
            module_dir(), MODULE, f"config/crd/standard/gateway.networking.k8s.io_{plural}.yaml"
        )
        for plural in plurals
    ]


def v1alpha3_backend_tls_policy_crd() -> pathlib.Path:
    """The BackendTLSPolicy CRD of Gateway API 1.3, which serves v1alpha3 only."""
    return toolchain.module_file(
        paths.repo_root() / "tools" / "gateway-api-1.3", MODULE, V1ALPHA3_POLICY
    )
