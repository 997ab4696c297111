"""Security contexts for the pods the operator runs (Pod Security Standards "restricted"), and
secrets handed to them by reference only.

Every render module calls these, so every rendered container is non-root, has a read-only root
filesystem, no privilege escalation, no capabilities and the runtime's default seccomp profile,
and no secret value ever appears in a manifest.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from tiers.api import common
from tiers.operator.manifests import labels

# The distroless "nonroot" user, as the operator's own pod runs (charts/tiers).
NONROOT_UID = 65532


def _seccomp() -> dict[str, str]:
    return {"type": "RuntimeDefault"}


def pod_security_context(uid: int) -> dict[str, Any]:
    """The pod-level context; `fsGroup` lets `uid` write to the pod's emptyDir volumes."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": _seccomp(),
    }


def container_security_context(uid: int) -> dict[str, Any]:
    """The container-level context: repeated here so it holds even if the pod's is changed."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": _seccomp(),
    }


def render_secret(
    owner: labels.Owner, component: labels.Component, data: Mapping[str, str]
) -> dict[str, Any]:
    """A Secret that `owner` owns, holding what the operator generated or derived for it."""
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": component.metadata(owner),
        "type": "Opaque",
        "data": encoded,
    }


def secret_env(variable: str, ref: common.SecretKeyRef) -> dict[str, Any]:
    """An env entry read from a Secret key: the value stays in the Secret, never in a manifest."""
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
