"""An Azure Databricks workspace's URL from its resource ID (`spec.databricks.workspaceResourceId`
of a BatchJob, `spec.batch.databricks.workspaceResourceId` of a RealtimeEndpoint),
read from Azure Resource Manager with azure-mgmt-resource as a Microsoft Entra ID principal
(azure-identity): a service principal whose secret is in a Secret, or the operator's own workload
identity. I/O only; called by `batch_databricks.workspace_host`.

The SDKs block, so each lookup runs in a thread. A URL, once read, is kept per resource ID and
principal (a workspace's URL never changes); a credential is kept per principal, so its token
is reused until near expiry; both are bounded (`KEPT`), since IDs and principals come from
specs. Failures come back as `databricks_client` failures whose messages never hold a secret or
a token: `NotFound` (404), `Refused` (401/403, or Entra ID refused the principal),
`Unavailable` (anything else).

Where Azure is (sovereign clouds, tests): `AZURE_AUTHORITY_HOST` (azure-identity's own setting),
`TIERS_AZURE_RESOURCE_MANAGER` and `TIERS_AZURE_CA_BUNDLE` (a CA bundle to trust instead of the
system's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
from typing import TYPE_CHECKING, Any

from tiers.api import batch
from tiers.operator import bounded, databricks_client

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

API_VERSION = "2024-05-01"
"""Microsoft.Databricks/workspaces' API version the lookup asks for."""
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_RESOURCE_MANAGER = "https://management.azure.com"
TIMEOUT_SECONDS = 20
RETRIES = 2
KEPT = 256
"""Workspace URLs, and credentials, kept at most; past that the oldest go first."""


@dataclasses.dataclass(frozen=True)
class Cloud:
    """Where Entra ID and Resource Manager answer."""

    authority: str = DEFAULT_AUTHORITY
    resource_manager: str = DEFAULT_RESOURCE_MANAGER
    ca_bundle: str | None = None

    @classmethod
    def from_env(cls) -> Cloud:
        return cls(
            authority=os.environ.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY,
            resource_manager=os.environ.get("TIERS_AZURE_RESOURCE_MANAGER")
            or DEFAULT_RESOURCE_MANAGER,
            ca_bundle=os.environ.get("TIERS_AZURE_CA_BUNDLE") or None,
        )


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who asks: a service principal with its secret, or (secret None) workload identity, whose
    tenant, client and token file default to what AKS's webhook put in the operator's env."""

    tenant_id: str | None = None
    client_id: str | None = None
    secret: str | None = dataclasses.field(default=None, repr=False)
    token_file: str | None = None

    def key(self) -> tuple[str, ...]:
        digest = hashlib.sha256((self.secret or "").encode()).hexdigest()
        return (self.tenant_id or "", self.client_id or "", digest, self.token_file or "")


_hosts: dict[tuple[str, tuple[str, ...]], str] = {}
"""Workspace URL per resource ID (lower case: ARM's IDs are case-insensitive) and principal: a
principal never gets from the cache what Azure would refuse it."""
_credentials: dict[tuple[str, ...], TokenCredential] = {}


def subscription_of(resource_id: str, *, field: str = "spec.databricks") -> str:
    """The subscription ID in a workspace's resource ID; ValueError, naming `field`'s
    workspaceResourceId, when it has not that shape (the CRD's pattern,
    `batch.WORKSPACE_RESOURCE_ID_PATTERN`)."""
    if re.fullmatch(batch.WORKSPACE_RESOURCE_ID_PATTERN.strip("^$"), resource_id) is None:
        raise ValueError(
            f"{field}.workspaceResourceId {resource_id!r} is not an Azure Databricks "
            "workspace's resource ID (/subscriptions/<subscription id>/resourceGroups/<group>/"
            "providers/Microsoft.Databricks/workspaces/<name>)"
        )
    return resource_id.split("/")[2]


async def workspace_url(
    resource_id: str, principal: Principal, cloud: Cloud, *, field: str = "spec.databricks"
) -> str:
    """The workspace's URL (https://adb-….azuredatabricks.net), cached per resource ID; the
    failures' messages name the spec's fields under `field`."""
    key = (resource_id.lower(), principal.key())
    cached = _hosts.get(key)
    if cached is not None:
        return cached
    url = await asyncio.to_thread(_look_up, resource_id, principal, cloud, field)
    bounded.keep(_hosts, key, url, limit=KEPT)
    return url


def forget() -> None:
    """Drops what is cached (tests)."""
    _hosts.clear()
    _credentials.clear()


def _look_up(resource_id: str, principal: Principal, cloud: Cloud, field: str) -> str:
    # Imported here, in a worker thread, on the first lookup: they take a while to import.
    from azure.core import exceptions
    from azure.mgmt.resource.resources import ResourceManagementClient

    try:
        subscription = subscription_of(resource_id, field=field)
    except ValueError as error:
        raise databricks_client.NotFound(str(error)) from None
    what = f"reading {resource_id} from Azure Resource Manager"
    # Bounded: a lookup that does not answer costs one reconcile this long, never a stuck one.
    transport: dict[str, Any] = {
        "connection_timeout": TIMEOUT_SECONDS, "read_timeout": TIMEOUT_SECONDS,
        "retry_total": RETRIES,
    }  # fmt: skip
    if cloud.ca_bundle:
        transport["connection_verify"] = cloud.ca_bundle
    try:
        credential = _credential(principal, cloud, transport)
    except ValueError as error:  # workload identity without its env (tenant, client, token file)
        raise databricks_client.Refused(
            f"{what}: no Azure identity ({_first_line(error)}); set {field}.azure with "
            "its clientSecretRef, or give the operator workload identity"
        ) from None
    try:
        client = ResourceManagementClient(
            credential, subscription,
            base_url=cloud.resource_manager,
            credential_scopes=[cloud.resource_manager.rstrip("/") + "/.default"],
            **transport,
        )  # fmt: skip
        with client:
            found = client.resources.get_by_id(resource_id, api_version=API_VERSION)
    except exceptions.ResourceNotFoundError:
        raise databricks_client.NotFound(
            f"{what}: no such workspace (404; check {field}.workspaceResourceId)"
        ) from None
    except exceptions.ClientAuthenticationError as error:
        bounded.drop(_credentials, principal.key())
        raise databricks_client.Refused(f"{what}: {_reason(error)}") from None
    except exceptions.HttpResponseError as error:
        if error.status_code == 403:
            raise databricks_client.Refused(
                f"{what}: access refused (403 {_code(error)}; the principal needs the Reader "
                "role on the workspace)"
            ) from None
        raise databricks_client.Unavailable(f"{what}: {error.status_code} {_code(error)}") from None
    except exceptions.AzureError as error:
        raise databricks_client.Unavailable(f"{what}: {type(error).__name__}") from None
    properties = found.properties if isinstance(found.properties, dict) else {}
    host = str(properties.get("workspaceUrl") or "")
    url = host if "://" in host else f"https://{host}"
    if not host or re.fullmatch(batch.DATABRICKS_HOST_PATTERN.strip("^$"), url) is None:
        raise databricks_client.Unavailable(
            f"{what}: the workspace has no usable workspaceUrl ({host[:100]!r}); is it provisioned?"
        )
    return url.rstrip("/")


def _credential(
    principal: Principal, cloud: Cloud, transport: dict[str, object]
) -> TokenCredential:
    from azure.identity import ClientSecretCredential, WorkloadIdentityCredential

    credential = _credentials.get(principal.key())
    if credential is not None:
        return credential
    options = {
        "authority": cloud.authority,
        # Instance discovery asks the public cloud about the authority; a private or sovereign
        # one is not in its list.
        "disable_instance_discovery": cloud.authority != DEFAULT_AUTHORITY,
        **transport,
    }
    if principal.secret is not None:
        assert principal.tenant_id and principal.client_id, "the CRD requires both"
        credential = ClientSecretCredential(
            principal.tenant_id, principal.client_id, principal.secret, **options
        )
    else:
        credential = WorkloadIdentityCredential(
            tenant_id=principal.tenant_id, client_id=principal.client_id,
            token_file_path=principal.token_file, **options,
        )  # fmt: skip
    bounded.keep(_credentials, principal.key(), credential, limit=KEPT)
    return credential


def _code(error: BaseException) -> str:
    code = getattr(getattr(error, "error", None), "code", None)
    return str(code or type(error).__name__)


def _reason(error: BaseException) -> str:
    """What Entra ID or ARM said, first line, without anything a token could be in."""
    return f"Microsoft Entra ID refused the principal ({_first_line(error)})"


def _first_line(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error)
    return (message.splitlines()[0] if message else type(error).__name__)[:240]
