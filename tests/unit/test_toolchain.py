"""The dev toolchain reads the versions it builds from the wrapper modules' go.mod."""

import pathlib

import pytest

from tiers.devenv import cert_manager, gateway_api, paths, spark_operator, toolchain


def test_a_replace_directive_wins_over_require(tmp_path: pathlib.Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(
        "module x\n\nrequire k8s.io/api v0.0.0\n\n"
        "replace (\n\tk8s.io/api => k8s.io/api v0.36.3\n)\n"
    )
    assert toolchain.pinned_version(go_mod, "k8s.io/api") == "v0.36.3"


def test_a_single_line_require_is_read(tmp_path: pathlib.Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text("module x\n\nrequire sigs.k8s.io/kwok v0.8.0\n")
    assert toolchain.pinned_version(go_mod, "sigs.k8s.io/kwok") == "v0.8.0"


def test_a_missing_module_is_an_error(tmp_path: pathlib.Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text("module x\n")
    with pytest.raises(ValueError, match="does not require"):
        toolchain.pinned_version(go_mod, "k8s.io/kubernetes")


def test_the_committed_wrapper_modules_pin_the_designed_versions() -> None:
    versions = {tool.name: tool.version for tool in toolchain.ALL}
    assert versions["k8s"].startswith("v1.36.")
    assert versions["etcd"].startswith("v3.6.")
    assert versions["kwok"] == "v0.8.0"
    assert versions["helm"].startswith("v3.")


def test_binaries_are_cached_per_version_outside_the_repo() -> None:
    out = toolchain.KUBERNETES.out_dir
    assert out.name == f"k8s-{toolchain.KUBERNETES.version}"
    assert toolchain.KUBERNETES.module_dir not in out.parents


def test_the_spark_operator_crd_comes_from_a_pinned_and_checksummed_v2_release() -> None:
    assert spark_operator.version().startswith("v2.")
    assert (spark_operator.module_dir() / "go.sum").read_text().count(spark_operator.MODULE) == 2
    assert spark_operator.CRD_FILE.endswith("sparkoperator.k8s.io_sparkapplications.yaml")


def test_cert_managers_certificate_crd_comes_from_a_pinned_and_checksummed_release() -> None:
    go_mod = cert_manager.module_dir() / "go.mod"
    assert toolchain.pinned_version(go_mod, cert_manager.MODULE).startswith("v1.")
    assert (cert_manager.module_dir() / "go.sum").read_text().count(cert_manager.MODULE) == 2
    assert cert_manager.CRD_FILE.endswith("cert-manager.io_certificates.yaml")


def test_the_v1alpha3_backend_tls_policy_crd_is_gateway_api_1_3s_experimental_one() -> None:
    wrapper = paths.repo_root() / "tools" / "gateway-api-1.3"
    assert toolchain.pinned_version(wrapper / "go.mod", gateway_api.MODULE) == "v1.3.0"
    assert (wrapper / "go.sum").read_text().count(gateway_api.MODULE) == 2
    assert "/experimental/" in gateway_api.V1ALPHA3_POLICY
