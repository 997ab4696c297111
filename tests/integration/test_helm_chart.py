"""The Helm chart, with the helm the dev toolchain builds, against the real local control plane."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import Kubectl, wait_for

from tiers import api, devenv
from tiers.api import crdgen
from tiers.devenv import toolchain

CHART = pathlib.Path(__file__).resolve().parents[2] / "charts" / "tiers"
# `helm template` assumes Kubernetes 1.20 unless told; the chart needs 1.30 or newer.
KUBE_VERSION = "1.36.0"


class Helm:
    """helm against the dev cluster, with its own config and cache folders."""

    def __init__(self, cluster: devenv.DevCluster, home: pathlib.Path) -> None:
        self.binary = str(toolchain.ensure_built(toolchain.HELM) / "helm")
        self.env = {
            **os.environ,
            **cluster.env(),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def render(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`helm template` of the chart, as a release named "t"."""
        return self.run(
            "template", "t", str(CHART), "--kube-version", KUBE_VERSION, *args, check=check
        )

    def template(self, *args: str) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.render(*args).stdout) if doc]


@pytest.fixture(scope="module")
def helm(dev_cluster: devenv.DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(dev_cluster, tmp_path_factory.mktemp("helm"))


def crds_of(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for doc in documents
        if doc["kind"] == "CustomResourceDefinition"
    }


def test_chart_passes_helm_lint(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_default_render_holds_the_generated_crds_kept_on_uninstall(helm: Helm) -> None:
    crds = crds_of(helm.template())
    assert set(crds) == {kind.crd_name for kind in api.ALL}
    for kind in api.ALL:
        rendered, generated = crds[kind.crd_name], crdgen.render_crd(kind)
        assert rendered["spec"] == generated["spec"]
        assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert generated["metadata"]["labels"].items() <= rendered["metadata"]["labels"].items()


def test_rendered_crds_are_accepted_by_the_apiserver(
    helm: Helm, kubectl: Kubectl, crds: None
) -> None:
    rendered = helm.render(
        *(f"--show-only=templates/crds/{crdgen.file_name(kind)}" for kind in api.ALL)
    ).stdout
    applied = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=rendered).stdout
    assert applied.count("(server dry run)") == len(api.ALL)


def test_crds_keep_false_lets_uninstall_delete_them(helm: Helm) -> None:
    crds = crds_of(helm.template("--set", "crds.keep=false"))
    assert len(crds) == len(api.ALL)
    assert all("annotations" not in crd["metadata"] for crd in crds.values())


def test_crds_enabled_false_renders_no_crds(helm: Helm) -> None:
    documents = helm.template("--set", "crds.enabled=false")
    assert crds_of(documents) == {}
    assert "Deployment" in {doc["kind"] for doc in documents}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=-1", "at '/replicaCount': minimum: got -1, want 0"),
        ("replicaCount=3", "at '/replicaCount': maximum: got 3, want 2"),
        ("replicas=1", "additional properties 'replicas' not allowed"),
        ("crds.enabeld=false", "at '/crds': additional properties 'enabeld' not allowed"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("azure.workloadIdentity.clientId=my-app", "at '/azure/workloadIdentity/clientId'"),
    ],
)
def test_a_bad_value_is_rejected_naming_the_key(helm: Helm, setting: str, message: str) -> None:
    result = helm.render("--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


class Release:
    """One install of the chart into its own namespace, under a name no other test uses."""

    def __init__(self, helm: Helm, kubectl: Kubectl) -> None:
        self.helm, self.kubectl = helm, kubectl
        suffix = uuid.uuid4().hex[:6]
        # The name holds "tiers", so the objects are named after the release alone.
        self.name = f"tiers-{suffix}"
        self.namespace = f"t-helm-{suffix}"
        self.service_account = f"system:serviceaccount:{self.namespace}:{self.name}"

    def install(self) -> str:
        # The session's `crds` fixture applied the CRDs with kubectl; Helm would refuse to adopt
        # them, so this release leaves them out (the renders above test the chart's CRDs).
        return self.helm.run(
            "install", self.name, str(CHART), "--namespace", self.namespace,
            "--create-namespace", "--set", "crds.enabled=false",
        ).stdout  # fmt: skip

    def deployment(self) -> dict[str, Any] | None:
        found = self.kubectl.run(
            "get", "deployment", self.name, "-n", self.namespace, "-o", "json",
            "--ignore-not-found",
        ).stdout  # fmt: skip
        return json.loads(found) if found.strip() else None

    def available_replicas(self) -> int:
        deployment = self.deployment() or {}
        return int(deployment.get("status", {}).get("availableReplicas", 0))

    def uninstall(self, *, check: bool = True) -> None:
        self.helm.run("uninstall", self.name, "--namespace", self.namespace, "--wait", check=check)

    def delete_namespace(self) -> None:
        self.kubectl.run("delete", "namespace", self.namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(helm: Helm, kubectl: Kubectl, crds: None) -> Iterator[Release]:
    installed = Release(helm, kubectl)
    notes = installed.install()
    assert "kubectl get tiers -A" in notes
    try:
        yield installed
    finally:
        installed.uninstall(check=False)
        installed.delete_namespace()


def test_installed_operator_deployment_becomes_available(release: Release) -> None:
    wait_for(
        lambda: release.available_replicas() == 1,
        timeout_s=60,
        what=f"deployment/{release.name} to have 1 available replica",
    )
    deployment = release.deployment()
    assert deployment is not None
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == release.name
    container = pod["containers"][0]
    assert container["image"] == "tiers:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("patch", "realtimeendpoints.tiers.dev --subresource=status", True),
        ("patch", "batchjobs.tiers.dev --subresource=status", True),
        ("update", "batchjobs.tiers.dev --subresource=status", False),
        ("watch", "streampipelines.tiers.dev", True),
        (
            "get",
            "streampipelines.tiers.dev",
            True,
        ),  # by name, for a deleted namesake (kube.conflict)
        ("create", "deployments.apps", True),
        ("watch", "deployments.apps", True),
        ("update", "deployments.apps", False),
        ("create", "poddisruptionbudgets.policy", True),
        ("create", "networkpolicies.networking.k8s.io", True),
        ("patch", "ingresses.networking.k8s.io", True),
        ("watch", "ingresses.networking.k8s.io", True),
        ("list", "persistentvolumeclaims", False),
        ("get", "secrets", True),
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("delete", "configmaps", False),
        ("create", "events", True),
        ("create", "events.events.k8s.io", False),
        ("create", "jobs.batch", True),
        ("delete", "jobs.batch", True),
        ("update", "jobs.batch", False),
        ("delete", "realtimeendpoints.tiers.dev", False),
        ("create", "realtimeendpoints.tiers.dev", False),
        ("create", "secrets", True),
        ("update", "secrets", False),
        ("delete", "namespaces", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
        # A Batch API gateway's Role: granted only verbs the operator holds, never escalated.
        ("create", "roles.rbac.authorization.k8s.io", True),
        ("escalate", "roles.rbac.authorization.k8s.io", False),
        ("bind", "roles.rbac.authorization.k8s.io", False),
    ],
)
def test_operator_service_account_has_exactly_the_permissions_it_needs(
    release: Release, kubectl: Kubectl, verb: str, resource: str, allowed: bool
) -> None:
    # A namespace other than the release's: the operator works cluster-wide.
    result = kubectl.run(
        "auth", "can-i", verb, *resource.split(), "--namespace", "default",
        "--as", release.service_account, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


@pytest.mark.parametrize(
    ("verb", "lease", "in_release_namespace", "allowed"),
    [
        ("create", "", True, True),
        ("get", "/tiers-operator", True, True),
        ("update", "/tiers-operator", True, True),
        ("delete", "/tiers-operator", True, False),
        ("update", "/someone-elses", True, False),
        ("get", "/tiers-operator", False, False),
        ("create", "", False, False),
    ],
)
def test_operator_service_account_may_hold_its_leader_lease_and_no_other(
    release: Release,
    kubectl: Kubectl,
    verb: str,
    lease: str,
    in_release_namespace: bool,
    allowed: bool,
) -> None:
    namespace = release.namespace if in_release_namespace else "default"
    result = kubectl.run(
        "auth", "can-i", verb, f"leases.coordination.k8s.io{lease}", "--namespace", namespace,
        "--as", release.service_account, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def operator_identity(documents: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's ServiceAccount and its pod template's metadata."""
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    (account,) = [doc for doc in documents if doc["kind"] == "ServiceAccount"
                  and doc["metadata"]["name"] == pod["spec"]["serviceAccountName"]]  # fmt: skip
    return account, pod["metadata"]


def test_azure_workload_identity_annotates_the_service_account_and_labels_the_pod(
    helm: Helm,
) -> None:
    client_id = "11111111-2222-4333-8444-555555555555"
    account, pod = operator_identity(helm.template(
        "--set", f"azure.workloadIdentity.clientId={client_id}",
        "--set", "azure.workloadIdentity.tenantId=contoso.onmicrosoft.com",
        "--set", "serviceAccount.annotations.team=ml",
    ))  # fmt: skip
    assert account["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": client_id,
        "azure.workload.identity/tenant-id": "contoso.onmicrosoft.com",
        "team": "ml",
    }
    assert pod["labels"]["azure.workload.identity/use"] == "true"
    # Without it, neither: the webhook leaves the pod alone.
    account, pod = operator_identity(helm.template())
    assert "annotations" not in account["metadata"]
    assert "azure.workload.identity/use" not in pod["labels"]


def test_two_replicas_render_one_deployment_whose_pods_take_turns(helm: Helm) -> None:
    deployments = [
        doc for doc in helm.template("--set", "replicaCount=2") if doc["kind"] == "Deployment"
    ]
    assert [doc["spec"]["replicas"] for doc in deployments] == [2]
    roles = [doc for doc in helm.template() if doc["kind"] == "Role"]
    assert any("leases" in rule["resources"] for role in roles for rule in role.get("rules", []))


@pytest.mark.parametrize(
    ("verb", "allowed"),
    [
        ("create", True),
        ("patch", True),
        ("get", True),
        ("list", True),
        ("delete", True),
        ("update", False),
        ("watch", False),
    ],
)
def test_operator_service_account_may_apply_and_read_spark_applications(
    release: Release, kubectl: Kubectl, verb: str, allowed: bool
) -> None:
    # A SubjectAccessReview, not `kubectl auth can-i`: without the Spark Operator's CRD installed,
    # can-i cannot resolve the group and asks about a core resource of that name instead.
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": release.service_account,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {"group": "sparkoperator.k8s.io", "resource": "sparkapplications",
                                   "verb": verb, "namespace": "default"},
        },
    }  # fmt: skip
    answer = json.loads(
        kubectl.run("create", "-o", "json", "-f", "-", stdin=json.dumps(review)).stdout
    )
    assert answer["status"].get("allowed", False) is allowed, answer["status"]


def test_uninstall_removes_the_operator(helm: Helm, kubectl: Kubectl, crds: None) -> None:
    release = Release(helm, kubectl)
    release.install()
    try:
        wait_for(lambda: release.deployment(), timeout_s=30, what="the operator's Deployment")
        release.uninstall()
        wait_for(
            lambda: release.deployment() is None,
            timeout_s=30,
            what=f"deployment/{release.name} to be deleted",
        )
        roles = kubectl.run(
            "get", "clusterrole", release.name, "--ignore-not-found", "-o", "name"
        ).stdout
        assert roles.strip() == ""
    finally:
        release.delete_namespace()


def test_plain_manifests_install_an_operator_that_becomes_available(
    kubectl: Kubectl, operator: str
) -> None:
    """dist/install.yaml (`make manifests`) applied as its header says. Its ServiceAccount, RBAC
    and Namespace are the ones the session's operator already runs as (the same chart, release
    and namespace), so applying them changes nothing; only what it adds is removed after."""
    install = CHART.parents[1] / "dist" / "install.yaml"
    kinds = [doc["kind"] for doc in yaml.safe_load_all(install.read_text()) if doc]
    assert kinds[: len(api.ALL) + 1] == [*["CustomResourceDefinition"] * len(api.ALL), "Namespace"]
    try:
        kubectl.run("apply", "--server-side", "-f", str(install))
        wait_for(
            lambda: (
                kubectl.get("deployment", "tiers", "-n", "tiers-system")
                .get("status", {})
                .get("availableReplicas")
            ),
            timeout_s=60,
            what="the operator's Deployment from dist/install.yaml to be available",
        )
    finally:
        kubectl.run(
            "delete", "deployment,service", "-l", "app.kubernetes.io/instance=tiers",
            "-n", "tiers-system", "--ignore-not-found", "--wait=false",
        )  # fmt: skip


def test_the_console_is_off_by_default(helm: Helm) -> None:
    documents = helm.template()
    assert not [doc for doc in documents if "console" in doc["metadata"]["name"]]


def test_the_console_renders_a_deployment_service_and_a_read_only_identity(helm: Helm) -> None:
    documents = helm.template("--set", "console.enabled=true")
    by_kind = {doc["kind"]: doc for doc in documents if "console" in doc["metadata"]["name"]}
    assert set(by_kind) == {
        "Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"
    }  # fmt: skip
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert (
        pod["serviceAccountName"]
        == by_kind["ServiceAccount"]["metadata"]["name"]
        == "t-tiers-console"
    )
    [container] = pod["containers"]
    assert container["command"] == ["python", "-m", "tiers.console"]
    assert "--allow-anonymous-read" not in container["args"], "users sign in with their token"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert by_kind["Service"]["spec"]["ports"][0]["port"] == 8088
    # Read the three kinds, nothing else: users act with their own tokens.
    assert by_kind["ClusterRole"]["rules"] == [
        {"apiGroups": ["tiers.dev"], "resources": ["realtimeendpoints", "streampipelines", "batchjobs"],
         "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip


def test_the_console_with_watch_namespaces_reads_only_those(helm: Helm) -> None:
    documents = helm.template(
        "--set", "console.enabled=true", "--set", "console.allowAnonymousRead=true",
        "--set", "watchNamespaces={a,b}",
    )  # fmt: skip
    console = [doc for doc in documents if "console" in doc["metadata"]["name"]]
    assert "ClusterRole" not in {doc["kind"] for doc in console}
    roles = {doc["metadata"]["namespace"]: doc["rules"] for doc in console if doc["kind"] == "Role"}
    assert set(roles) == {"a", "b"}
    # Events for users without a token, and no ConfigMap: a gateway's CA is in its status.
    assert roles["a"] == roles["b"] == [
        {"apiGroups": ["tiers.dev"], "resources": ["realtimeendpoints", "streampipelines", "batchjobs"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]  # fmt: skip
    [deployment] = [doc for doc in console if doc["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=a", "--namespace=b", "--allow-anonymous-read"} <= set(args)
