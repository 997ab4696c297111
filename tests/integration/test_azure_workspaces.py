"""`spec.databricks.workspaceResourceId`: the operator reads an Azure Databricks workspace's URL
from Azure Resource Manager with azure-identity and azure-mgmt-resource, which talk over HTTPS to
the fake Azure of `tiers.devenv.azure` (Entra ID's token endpoint and ARM's GET by ID). The right
ID gives the URL (read once, then cached), an unknown one, a principal without access and a bad
secret give the conditions a user sees on the BatchJob."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest

from tiers.api import batch
from tiers.devenv import azure
from tiers.operator import azure_workspaces, batch_databricks, databricks_client

SUBSCRIPTION = "0a1b2c3d-0000-4000-8000-00000000abcd"
PREFIX = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/data-rg/providers/Microsoft.Databricks"
WORKSPACE = f"{PREFIX}/workspaces/ml-prod"
OTHER = f"{PREFIX}/workspaces/ml-dev"
WORKSPACE_HOST = "adb-7474650000000000.12.azuredatabricks.net"
APP = "11111111-2222-4333-8444-555555555555"
SECRET = "sp-secret-for-tests"
READER_OF_OTHER = "11111111-2222-4333-8444-666666666666"
OPERATOR = "11111111-2222-4333-8444-777777777777"
FEDERATED = "projected-service-account-token"


@pytest.fixture(scope="module")
def azure_server() -> Iterator[azure.Server]:
    with azure.running(
        workspaces={WORKSPACE: WORKSPACE_HOST, OTHER: "adb-1.azuredatabricks.net"},
        clients={APP: SECRET, READER_OF_OTHER: FEDERATED, OPERATOR: FEDERATED},
        grants={READER_OF_OTHER: {OTHER}},
    ) as server:
        yield server


@pytest.fixture
def arm(azure_server: azure.Server) -> Iterator[azure.Server]:
    """The module's fake Azure, with nothing cached nor recorded by an earlier test."""
    azure_workspaces.forget()
    azure_server.cloud.requests.clear()
    yield azure_server
    azure_workspaces.forget()


def cloud(arm: azure.Server) -> azure_workspaces.Cloud:
    return azure_workspaces.Cloud(
        authority=arm.url, resource_manager=arm.url, ca_bundle=str(arm.ca_cert)
    )


def look_up(arm: azure.Server, resource_id: str, principal: azure_workspaces.Principal) -> str:
    return asyncio.run(azure_workspaces.workspace_url(resource_id, principal, cloud(arm)))


def test_the_right_resource_id_gives_the_workspace_url_read_once(arm: azure.Server) -> None:
    principal = azure_workspaces.Principal(arm.tenant, APP, SECRET)
    assert look_up(arm, WORKSPACE, principal) == f"https://{WORKSPACE_HOST}"
    # ARM's IDs are case-insensitive, and the second lookup is the cache's.
    assert look_up(arm, WORKSPACE.lower(), principal) == f"https://{WORKSPACE_HOST}"
    reads = [path for method, path in arm.cloud.requests if path.startswith("/subscriptions/")]
    assert reads == [WORKSPACE]
    tokens = [path for method, path in arm.cloud.requests if method == "POST"]
    assert tokens == [f"/{arm.tenant}/oauth2/v2.0/token"]


def test_the_cache_keeps_at_most_its_bound_the_oldest_read_again(
    arm: azure.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure_workspaces, "KEPT", 1)  # IDs come from specs: no end to them
    principal = azure_workspaces.Principal(arm.tenant, APP, SECRET)
    for resource_id in (WORKSPACE, OTHER, WORKSPACE):
        look_up(arm, resource_id, principal)
    reads = [path for method, path in arm.cloud.requests if path.startswith("/subscriptions/")]
    assert reads == [WORKSPACE, OTHER, WORKSPACE]


def test_an_unknown_workspace_is_not_found(arm: azure.Server) -> None:
    principal = azure_workspaces.Principal(arm.tenant, APP, SECRET)
    with pytest.raises(databricks_client.NotFound, match="no such workspace"):
        look_up(arm, f"{PREFIX}/workspaces/ml-gone", principal)


def test_a_principal_without_access_is_refused(arm: azure.Server, tmp_path: pathlib.Path) -> None:
    # Workload identity: the pod's projected token is the client assertion.
    token_file = tmp_path / "token"
    token_file.write_text(FEDERATED)
    principal = azure_workspaces.Principal(arm.tenant, READER_OF_OTHER, token_file=str(token_file))
    assert look_up(arm, OTHER, principal) == "https://adb-1.azuredatabricks.net"
    with pytest.raises(databricks_client.Refused, match=r"403 AuthorizationFailed.*Reader role"):
        look_up(arm, WORKSPACE, principal)


def test_a_wrong_secret_is_refused_without_saying_it(arm: azure.Server) -> None:
    principal = azure_workspaces.Principal(arm.tenant, APP, "not-the-secret")
    with pytest.raises(databricks_client.Refused, match="Entra ID refused") as refused:
        look_up(arm, WORKSPACE, principal)
    assert "not-the-secret" not in str(refused.value)


def test_a_malformed_id_is_refused_before_any_request(arm: azure.Server) -> None:
    principal = azure_workspaces.Principal(arm.tenant, APP, SECRET)
    with pytest.raises(databricks_client.NotFound, match="workspaceResourceId"):
        look_up(arm, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/data-rg", principal)
    assert arm.cloud.requests == []


@pytest.mark.parametrize(
    ("resource_id", "client", "reason", "status"),
    [
        (WORKSPACE, READER_OF_OTHER, "AzureAuthFailed", "False"),
        (f"{PREFIX}/workspaces/ml-gone", OPERATOR, "WorkspaceNotFound", "False"),
        (WORKSPACE, OPERATOR, "", ""),
    ],
    ids=["forbidden", "wrong", "right"],
)
def test_the_batch_jobs_condition_says_what_went_wrong(
    arm: azure.Server,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    resource_id: str,
    client: str,
    reason: str,
    status: str,
) -> None:
    # The operator's own workload identity, as AKS's webhook sets it in the pod's env.
    token_file = tmp_path / "token"
    token_file.write_text(FEDERATED)
    for name, value in {
        "AZURE_TENANT_ID": arm.tenant, "AZURE_CLIENT_ID": client,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file), "AZURE_AUTHORITY_HOST": arm.url,
        "TIERS_AZURE_RESOURCE_MANAGER": arm.url, "TIERS_AZURE_CA_BUNDLE": str(arm.ca_cert),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    settings = batch.Databricks.model_validate(
        {"workspaceResourceId": resource_id, "tokenSecretRef": {"name": "d", "key": "t"},
         "newCluster": {}}
    )  # fmt: skip
    found = asyncio.run(batch_databricks.workspace_host(settings, "default"))
    if not reason:
        assert found == f"https://{WORKSPACE_HOST}"
        return
    assert not isinstance(found, str)
    assert (found.status, found.reason) == (status, reason)
    assert resource_id in found.message
