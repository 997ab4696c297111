"""The operator's Kubernetes client for the objects it owns: server-side apply and reads.

One lightkube AsyncClient per process (it reads $KUBECONFIG or the in-cluster account). Every
write is a server-side apply with the `tiers-operator` field manager and `force=True`: the
operator owns the fields it sets on its children and takes them back from anyone who edits them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import httpx2
import lightkube
from lightkube import codecs, generic_resource
from lightkube.core import resource_registry
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret

FIELD_MANAGER = "tiers-operator"

_client: lightkube.AsyncClient | None = None


def client() -> lightkube.AsyncClient:
    global _client
    if _client is None:
        _client = lightkube.AsyncClient(field_manager=FIELD_MANAGER)
    return _client


class TypeNotServed(Exception):
    """The apiserver serves no such kind (at that apiVersion): its CRD is not installed."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"the apiserver serves no {kind} of {api_version}")
        self.api_version = api_version
        self.kind = kind


async def apply_all(manifests: Sequence[dict[str, Any]]) -> None:
    """Applies each manifest in order (config before the pods that mount it); raises
    `TypeNotServed` for an object whose type the cluster lacks."""
    for manifest in manifests:
        try:
            await client().apply(
                codecs.from_dict(manifest), field_manager=FIELD_MANAGER, force=True
            )
        except httpx2.HTTPStatusError as error:
            if _is_unserved_type(error):
                raise TypeNotServed(manifest["apiVersion"], manifest["kind"]) from error
            raise


def _is_unserved_type(error: httpx2.HTTPStatusError) -> bool:
    """Whether a request failed because no API serves its path. The apiserver answers an unknown
    group or version with a plain-text 404 (lightkube then raises the HTTP client's error, the
    base of its ApiError), and a known group without the resource with a Status that names no
    object (a missing object's or namespace's names it)."""
    if error.response.status_code != 404:
        return False
    if not isinstance(error, lightkube.ApiError):
        return True
    details = error.status.details
    return details is None or not details.name


async def delete_unlisted(
    manifests: Sequence[dict[str, Any]],
    candidates: Sequence[tuple[str, str, str]],
    *,
    namespace: str | None = None,
) -> None:
    """Deletes the candidate children (apiVersion, kind, name) that `manifests` no longer lists,
    e.g. the managed Redis once the spec turns the cache off."""
    listed = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests}
    namespace = namespace or (manifests[0]["metadata"]["namespace"] if manifests else None)
    for api_version, kind, name in candidates:
        if (api_version, kind, name) in listed:
            continue
        resource = resource_registry.resource_registry.load(api_version, kind)
        try:
            await client().delete(resource, name, namespace=namespace)  # type: ignore[type-var]
        except lightkube.ApiError as error:
            if error.status.code != 404:
                raise


async def deployment_status(name: str, namespace: str) -> dict[str, Any] | None:
    """The status of a Deployment, or None when it does not exist."""
    try:
        deployment = await client().get(Deployment, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return None
        raise
    status: dict[str, Any] = deployment.to_dict().get("status") or {}
    status["desiredReplicas"] = deployment.spec.replicas if deployment.spec else None
    return status


_REALTIME_ENDPOINT = generic_resource.create_namespaced_resource(
    "tiers.dev", "v1alpha1", "RealtimeEndpoint", "realtimeendpoints"
)


async def realtime_endpoint_spec(name: str, namespace: str) -> dict[str, Any] | None:
    """The spec of a RealtimeEndpoint, or None when there is none of that name."""
    try:
        endpoint = await client().get(_REALTIME_ENDPOINT, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return None
        raise
    spec: dict[str, Any] = endpoint.to_dict().get("spec") or {}  # type: ignore[no-untyped-call]
    return spec


SPARK_APPLICATION = generic_resource.create_namespaced_resource(
    "sparkoperator.k8s.io", "v1beta2", "SparkApplication", "sparkapplications"
)


async def spark_application(name: str, namespace: str) -> dict[str, Any] | None:
    """A SparkApplication (spec and the status its operator writes), or None when there is none
    of that name."""
    try:
        app = await client().get(SPARK_APPLICATION, name, namespace=namespace)
    except httpx2.HTTPStatusError as error:
        if _is_unserved_type(error):
            raise TypeNotServed("sparkoperator.k8s.io/v1beta2", "SparkApplication") from error
        if isinstance(error, lightkube.ApiError) and error.status.code == 404:
            return None
        raise
    found: dict[str, Any] = app.to_dict()  # type: ignore[no-untyped-call]
    return found


async def secret_value(name: str, key: str, namespace: str) -> str | None:
    """One decoded value of a Secret; None when the Secret or the key is missing."""
    try:
        secret = await client().get(Secret, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return None
        raise
    encoded = (secret.data or {}).get(key)
    return None if encoded is None else base64.b64decode(encoded).decode()


async def secret_nonblank_values(name: str, namespace: str) -> int | None:
    """How many values of a Secret hold more than whitespace; None when the Secret is missing.
    The values themselves are only looked at, never returned."""
    try:
        secret = await client().get(Secret, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return None
        raise
    return sum(1 for encoded in (secret.data or {}).values() if base64.b64decode(encoded).strip())


async def secret_exists(name: str, namespace: str) -> bool:
    try:
        await client().get(Secret, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True
