"""Security contexts for the pods the operator runs: Pod Security Standards "restricted".

`gateway` and `redis` call these, so every rendered container is non-root, has a read-only root
filesystem, no privilege escalation, no capabilities and the runtime's default seccomp profile.
"""

from __future__ import annotations

from typing import Any

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
