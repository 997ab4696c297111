"""cert-manager's own Certificate CRD, for tests of `spec.tls.issuerRef`.

No cert-manager controller runs here: its `cmd/controller` is a nested module the Go module
proxy serves no version of, so it cannot be built the way the control plane is. What the tests
need is the real CRD, so that the apiserver validates the Certificates the operator renders as
cert-manager's own schema does; the test then writes the Secret cert-manager would. The version
is pinned by the wrapper module `tools/cert-manager/go.mod` (and `go.sum`), fetched from the Go
module proxy like the Gateway API's CRDs (`gateway_api`), and the file is copied into
`~/.cache/tiers/crds/cert-manager-<version>/`.
"""

from __future__ import annotations

import pathlib

from tiers.devenv import paths, toolchain

MODULE = "github.com/cert-manager/cert-manager"
CRD_FILE = "deploy/crds/cert-manager.io_certificates.yaml"
CRD_NAME = "certificates.cert-manager.io"


def module_dir() -> pathlib.Path:
    return paths.repo_root() / "tools" / "cert-manager"


def certificate_crd() -> pathlib.Path:
    """The Certificate CRD of the pinned version, fetched once into the cache."""
    return toolchain.module_file(module_dir(), MODULE, CRD_FILE)
