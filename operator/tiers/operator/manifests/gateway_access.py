"""What the gateway of an endpoint with the Batch API (`spec.batch`) may do in the Kubernetes API:
its own ServiceAccount, and a Role bound to it that allows exactly what `POST /v1/batches` and
the reads of a batch call on BatchJobs in the endpoint's namespace. Pure.

The gateway never deletes a BatchJob: a batch is cancelled by suspending its BatchJob (patch),
and goes with the endpoint (its owner) through garbage collection.
"""

from __future__ import annotations

from typing import Any

from tiers.api import kinds
from tiers.operator.manifests import gateway, labels

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
BATCH_VERBS = ("get", "list", "create", "patch")
"""create a batch's BatchJob, get and list them for the batch objects, patch one to cancel it."""


def service_account_name(owner: labels.Named) -> str:
    return gateway.name(owner)


def render_batch_access(owner: labels.Owner) -> list[dict[str, Any]]:
    """The gateway's ServiceAccount, its Role on BatchJobs and the RoleBinding between them."""
    metadata = gateway.COMPONENT.metadata
    name = service_account_name(owner)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(owner),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "Role",
            "metadata": metadata(owner),
            "rules": [
                {
                    "apiGroups": [kinds.GROUP],
                    "resources": [kinds.BATCH_JOB.plural],
                    "verbs": list(BATCH_VERBS),
                }
            ],
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "RoleBinding",
            "metadata": metadata(owner),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
        },
    ]


def optional_children(owner: labels.Named) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of the objects above, deleted when the Batch API is off."""
    name = service_account_name(owner)
    return [
        ("v1", "ServiceAccount", name),
        (RBAC_API_VERSION, "Role", name),
        (RBAC_API_VERSION, "RoleBinding", name),
    ]
