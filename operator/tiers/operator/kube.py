"""The operator's Kubernetes client for the objects it owns: server-side apply and reads.

One lightkube AsyncClient per process (it reads $KUBECONFIG or the in-cluster account). Every
write is a server-side apply with the `tiers-operator` field manager and `force=True`: the
operator owns the fields it sets on its children and takes them back from anyone who edits them.
It writes and deletes only children its custom resource controls (`ownership`): an object of a
child's name that is not its child is reported, never adopted.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import httpx2
import lightkube
from lightkube import codecs, generic_resource
from lightkube.core import resource_registry
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from tiers.api import kinds
from tiers.operator import bounded, children, ownership

FIELD_MANAGER = "tiers-operator"
QPS = float(os.environ.get("TIERS_API_QPS", "400"))
BURST = int(os.environ.get("TIERS_API_BURST", "800"))
"""The client's rate limit (requests per second, and how many may go at once after a quiet
spell), as client-go's QPS and Burst: a thousand objects created at once (about 20 requests
each, two per child) reach the apiserver within a minute at this pace; the apiserver's own
priority and fairness shares it with the controllers and scheduler that make their pods."""
TIMEOUT_S = 30.0
"""How long one request may take: the apiserver's own limit is 60 s, and a busy one takes more
than lightkube's 10 s default to create a Service (its cluster IP) now and then."""

_client: lightkube.AsyncClient | None = None


def client() -> lightkube.AsyncClient:
    global _client
    if _client is None:
        _client = lightkube.AsyncClient(
            field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(TIMEOUT_S, connect=10.0)
        )
        # lightkube's request layer wraps one httpx AsyncClient: one connection pool per process.
        bucket = TokenBucket(rate=QPS, burst=BURST)
        _client._client._client.event_hooks["request"].append(bucket.take)
    return _client


class TokenBucket:
    """Paces requests to `rate` per second, letting `burst` through at once after a pause."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()

    def delay(self) -> float:
        """Takes a token; how long to wait before sending (0 when one was at hand)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def take(self, _: object = None) -> None:
        wait = self.delay()
        if wait > 0:
            await asyncio.sleep(wait)


class TypeNotServed(Exception):
    """The apiserver serves no such kind (at that apiVersion): its CRD is not installed."""

    def __init__(self, api_version: str, kind: str, applied: Sequence[Change] = ()) -> None:
        super().__init__(f"the apiserver serves no {kind} of {api_version}")
        self.api_version = api_version
        self.kind = kind
        self.applied = list(applied)
        """The changes `apply_all` made before it met the type."""


class DiscoveryFailed(Exception):
    """The apiserver's discovery could not be read (an error, not a 404: that says the kind is
    not served); asked again at the next call."""


@dataclasses.dataclass(frozen=True)
class Change:
    """A child the operator created, changed or deleted, for its owner's Events."""

    verb: Literal["Created", "Updated", "Deleted"]
    kind: str
    name: str

    @staticmethod
    def summaries(changes: Iterable[Change]) -> list[tuple[str, str]]:
        """(reason, message) per verb, in the order first seen: ("ChildCreated", "created
        ConfigMap chat-gateway, Deployment chat-gateway")."""
        by_verb: dict[str, list[str]] = {}
        for change in changes:
            by_verb.setdefault(change.verb, []).append(f"{change.kind} {change.name}")
        return [
            (f"Child{verb}", f"{verb.lower()} {', '.join(children)}")
            for verb, children in by_verb.items()
        ]


async def apply_all(manifests: Sequence[dict[str, Any]]) -> list[Change]:
    """Applies each manifest in order (config before the pods that mount it) and returns the
    children it created or changed (an apply that changed nothing is none); raises
    `TypeNotServed` for an object whose type the cluster lacks, and `ownership.ChildConflict`
    (before writing it or anything after it) for a name taken by an object its owner does not
    control (`ownership.NamesakesChild` when a deleted namesake of its owner controls it)."""
    changes: list[Change] = []
    for manifest in manifests:
        try:
            verb = await _apply_owned(manifest)
        except httpx2.HTTPStatusError as error:
            if _is_unserved_type(error):
                raise TypeNotServed(manifest["apiVersion"], manifest["kind"], changes) from error
            raise
        if verb is not None:
            changes.append(Change(verb, manifest["kind"], manifest["metadata"]["name"]))
    return changes


async def _apply_owned(manifest: dict[str, Any]) -> Literal["Created", "Updated"] | None:
    """Server-side applies a child with force, only onto an object its owner controls. A child
    known to be ours is applied with its uid, which the apiserver checks (no read first); any
    other is read once to see whose it is (absent: created by the apply)."""
    key = ownership.Key.of(manifest)
    owner_uid = ownership.controller_uid(manifest)
    assert owner_uid is not None, "every child is rendered with its controller ownerReference"
    digest = children.digest(manifest)
    known = ownership.recall(key, owner_uid)
    if known is not None:
        if children.is_current(key, digest):
            return None  # applied from this very manifest, and nobody changed it since
        before = children.applied_version(key)
        try:
            metadata = await _apply(manifest, uid=known.uid)
            children.record_applied(key, digest, {"metadata": metadata})
            return _verb(before, metadata)
        except lightkube.ApiError as error:
            # 409: no object of that name any more; 422: uid immutable, i.e. another object.
            if error.status.code not in (409, 422):
                raise
            ownership.forget(key)
            children.forget(key)
    existing = await read(key)
    if existing is not None and not ownership.is_ours(existing, owner_uid):
        _remember(key, None, owner_uid)
        raise await conflict(key, existing, manifest)
    uid = None if existing is None else str(existing["metadata"]["uid"])
    metadata = await _apply(manifest, uid=uid)
    _remember(key, ownership.Known(str(metadata["uid"]), owner_uid), owner_uid)
    children.record_applied(key, digest, {"metadata": metadata})
    if existing is None:
        return "Created"
    return _verb(children.version_of(existing), metadata)


def _verb(before: str | None, metadata: dict[str, Any]) -> Literal["Updated"] | None:
    """ "Updated" when the apply changed the object (its generation, or its resourceVersion
    for kinds without one); None when the apiserver found nothing to change."""
    return None if before == children.version_of({"metadata": metadata}) else "Updated"


async def _apply(manifest: dict[str, Any], *, uid: str | None) -> dict[str, Any]:
    """One server-side apply; with `uid`, only onto the object of that uid. Its uid, generation
    and resourceVersion after."""
    body = manifest
    if uid is not None:
        body = {**manifest, "metadata": {**manifest["metadata"], "uid": uid}}
    applied = await client().apply(codecs.from_dict(body), field_manager=FIELD_MANAGER, force=True)
    metadata = applied.metadata
    assert metadata is not None, "the apiserver answers an apply with the object"
    return {
        "uid": metadata.uid,
        "generation": metadata.generation,
        "resourceVersion": metadata.resourceVersion,
    }


async def read(key: ownership.Key) -> dict[str, Any] | None:
    """The object of that apiVersion, kind and name as a manifest, or None when absent (also
    when the cluster serves no such kind: nothing of it can exist)."""
    resource = resource_registry.resource_registry.load(key.api_version, key.kind)
    try:
        found = await client().get(resource, key.name, namespace=key.namespace)  # type: ignore[type-var]
    except httpx2.HTTPStatusError as error:
        if error.response.status_code == 404:
            return None
        raise
    manifest: dict[str, Any] = found.to_dict()  # type: ignore[union-attr]
    return manifest


async def conflict(
    key: ownership.Key, existing: dict[str, Any], manifest: dict[str, Any]
) -> ownership.ChildConflict:
    """`ownership.conflict`, with the object that holds the owner's name now read: a child of a
    deleted namesake of its owner is told (`ownership.NamesakesChild`) only once that namesake
    is gone or being deleted."""
    owner_now = None
    if ownership.held_by_a_deleted_namesake(existing, manifest):
        owner_now = await read(ownership.owner_key(manifest))
    return ownership.conflict(key, existing, manifest, owner_now=owner_now)


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


async def sync_children(
    manifests: Sequence[dict[str, Any]], candidates: Sequence[tuple[str, str, str]]
) -> tuple[list[Change], TypeNotServed | None]:
    """`apply_all`, then `delete_unlisted`: the children made as listed, the candidates no longer
    listed gone. A type the cluster does not serve (applied last: an HTTPRoute, a
    SparkApplication) ends the applies but not the deletions, so that an Ingress replaced by an
    HTTPRoute goes even where the route cannot be made; it is returned for the condition."""
    try:
        changes, unserved = await apply_all(manifests), None
    except TypeNotServed as error:
        changes, unserved = error.applied, error
    changes += await delete_unlisted(manifests, candidates)
    return changes, unserved


async def delete_unlisted(
    manifests: Sequence[dict[str, Any]],
    candidates: Sequence[tuple[str, str, str]],
    *,
    namespace: str | None = None,
) -> list[Change]:
    """Deletes the candidate children (apiVersion, kind, name) that `manifests` no longer lists,
    e.g. the managed Redis once the spec turns the cache off: only those the owner of
    `manifests` controls; an object of that name that is not its child is left alone."""
    if not manifests:
        return []
    changes = []
    listed = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests}
    namespace = namespace or manifests[0]["metadata"]["namespace"]
    owner_uid = ownership.controller_uid(manifests[0])
    assert owner_uid is not None, "every child is rendered with its controller ownerReference"
    for api_version, kind, name in candidates:
        if (api_version, kind, name) in listed:
            continue
        key = ownership.Key(api_version, kind, namespace, name)
        if ownership.is_known_absent(key):
            continue
        known = ownership.recall(key, owner_uid)
        uid = known.uid if known is not None else None
        if uid is None:
            existing = await read(key)
            if existing is not None and ownership.is_ours(existing, owner_uid):
                uid = str(existing["metadata"]["uid"])
        if uid is not None and await _delete(key, uid=uid):
            changes.append(Change("Deleted", kind, name))
        _remember(key, None, owner_uid)
    return changes


_children_of: dict[str, set[ownership.Key]] = {}
"""Per owner uid, the children (and candidates) that `ownership` and `children` keep records of:
dropped with the owner (`forget_owner`), or they would grow for the operator's life as BatchJobs
come and go (one per batch of the Batch API)."""


def _remember(key: ownership.Key, known: ownership.Known | None, owner_uid: str) -> None:
    ownership.remember(key, known)
    _children_of.setdefault(owner_uid, set()).add(key)


def forget_owner(uid: str) -> None:
    """Drops what is kept of a deleted owner's children (and of its runs, a BatchJob's)."""
    for key in _children_of.pop(uid, ()):
        ownership.forget(key)
        children.forget(key)
    children.forget_runs(uid)


async def _delete(key: ownership.Key, *, uid: str) -> bool:
    """Deletes the object of that name only if it still has that uid (a DELETE with a uid
    precondition, which lightkube's `delete` cannot send); whether this call deleted it."""
    resource = resource_registry.resource_registry.load(key.api_version, key.kind)
    http = client()._client  # lightkube's request layer: builds, sends and checks requests
    request = http.prepare_request("delete", resource, name=key.name, namespace=key.namespace)
    request.data = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
    try:
        sent = http.build_adapter_request(request)
        http.handle_response("delete", await http.send(sent), request)  # type: ignore[no-untyped-call]
    except lightkube.ApiError as error:
        # 404: gone already; 409: the name now belongs to another object, which stays.
        if error.status.code not in (404, 409):
            raise
        return False
    return True


_custom_resources: dict[str, Any] = {}


def _custom_resource(kind: kinds.Kind) -> Any:
    resource = _custom_resources.get(kind.kind)
    if resource is None:
        resource = _custom_resources[kind.kind] = generic_resource.create_namespaced_resource(
            kinds.GROUP, kinds.VERSION, kind.kind, kind.plural
        )
    return resource


async def patch_status(
    kind: kinds.Kind, name: str, namespace: str, status: dict[str, Any]
) -> dict[str, Any] | None:
    """A merge patch of a custom resource's status; the object as written, or None when it was
    deleted meanwhile (no error)."""
    try:
        written = await client().patch(
            _custom_resource(kind).Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    except lightkube.ApiError as error:
        if error.status.code != 404:
            raise
        return None
    manifest: dict[str, Any] = written.to_dict()
    return manifest


async def deployment_status(name: str, namespace: str) -> dict[str, Any] | None:
    """The status of a Deployment, or None when it does not exist: as last watched when the
    operator applied it (`children`), else read."""
    watched = children.deployment_status(ownership.Key("apps/v1", "Deployment", namespace, name))
    if watched is not None:
        return dict(watched)
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


_CALLERS = {
    plural: generic_resource.create_namespaced_resource("tiers.dev", "v1alpha1", kind, plural)
    for kind, plural in (("StreamPipeline", "streampipelines"), ("BatchJob", "batchjobs"))
}


async def custom_objects(plural: str, namespace: str) -> list[dict[str, Any]]:
    """Every StreamPipeline or BatchJob (by `plural`) in the namespace."""
    found = []
    async for item in client().list(_CALLERS[plural], namespace=namespace):
        manifest: dict[str, Any] = item.to_dict()  # type: ignore[no-untyped-call]
        found.append(manifest)
    return found


async def realtime_endpoint(name: str, namespace: str) -> dict[str, Any] | None:
    """A RealtimeEndpoint, or None when there is none of that name."""
    try:
        endpoint = await client().get(_REALTIME_ENDPOINT, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return None
        raise
    found: dict[str, Any] = endpoint.to_dict()  # type: ignore[no-untyped-call]
    return found


async def realtime_endpoint_spec(name: str, namespace: str) -> dict[str, Any] | None:
    """The spec of a RealtimeEndpoint, or None when there is none of that name."""
    endpoint = await realtime_endpoint(name, namespace)
    if endpoint is None:
        return None
    spec: dict[str, Any] = endpoint.get("spec") or {}
    return spec


SPARK_APPLICATION = generic_resource.create_namespaced_resource(
    "sparkoperator.k8s.io", "v1beta2", "SparkApplication", "sparkapplications"
)
HTTP_ROUTE = generic_resource.create_namespaced_resource(
    "gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"
)
"""Registered so that an endpoint's or pipeline's HTTPRoute can be applied, read and deleted."""
BACKEND_TLS_POLICIES = {
    version: generic_resource.create_namespaced_resource(
        "gateway.networking.k8s.io", version, "BackendTLSPolicy", "backendtlspolicies"
    )
    for version in ("v1", "v1alpha3")
}
"""Registered so that the BackendTLSPolicy of an HTTPRoute to a gateway with tls can be applied,
read and deleted, at the version the cluster serves (`served_version`)."""
CERTIFICATE = generic_resource.create_namespaced_resource(
    "cert-manager.io", "v1", "Certificate", "certificates"
)
"""Registered so that a gateway's cert-manager Certificate (tls.issuerRef) can be applied."""


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


_served: dict[tuple[str, str], tuple[str | None, float]] = {}
"""Kinds looked up in discovery: (group, plural) → (the version serving it or None, until when
that answer is trusted)."""
UNSERVED_RECHECK_S = 30.0
"""How long a kind found not served is taken as such (its CRD may be installed at any time)."""


async def served_version(group: str, plural: str, versions: Sequence[str]) -> str | None:
    """The first of `versions` (the preferred first) at which the apiserver serves `plural` of
    `group`, from discovery (which every account may read); None when it serves none of them.
    A kind found is trusted for a resync period, one not found for `UNSERVED_RECHECK_S`;
    `DiscoveryFailed` when discovery cannot be read."""
    known = _served.get((group, plural))
    if known is not None and time.monotonic() < known[1]:
        return known[0]
    http = client()._client._client  # lightkube's HTTP client, at the apiserver
    found = None
    for version in versions:
        try:
            response = await http.get(f"/apis/{group}/{version}")
            if response.status_code == 404:
                continue
            response.raise_for_status()
            resources = response.json().get("resources", ())
        except (httpx2.HTTPError, ValueError, AttributeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DiscoveryFailed(f"reading /apis/{group}/{version} failed: {reason}") from None
        if any(kind.get("name") == plural for kind in resources):
            found = version
            break
    trusted = children.jittered(children.RESYNC_S) if found else UNSERVED_RECHECK_S
    _served[(group, plural)] = (found, time.monotonic() + trusted)
    return found


def forget_served(group: str, plural: str) -> None:
    """Drops what `served_version` found: the kind was not served at that version after all
    (its CRD removed or changed since), so the next call asks discovery again."""
    _served.pop((group, plural), None)


_secrets: dict[tuple[str, str], tuple[Secret, float]] = {}
"""Secrets read, with when to stop trusting them: Secrets are never watched (the operator may
not list them), so a Secret found as the spec needs it is read again only after a resync
period; one missing, or lacking what is needed, is read again at every re-check. Bounded
(`SECRETS_KEPT`): their names come from specs and from BatchJobs made per batch."""
SECRETS_KEPT = 4096


async def _secret(
    name: str, namespace: str, *, usable: Callable[[Secret], bool] = lambda _: True
) -> Secret | None:
    """A Secret, or None when missing: the one read before while it is trusted and `usable`."""
    cached = _secrets.get((namespace, name))
    if cached is not None and time.monotonic() < cached[1] and usable(cached[0]):
        return cached[0]
    try:
        secret = await client().get(Secret, name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            _secrets.pop((namespace, name), None)
            return None
        raise
    _keep_secret(namespace, name, secret)
    return secret


def _keep_secret(namespace: str, name: str, secret: Secret) -> None:
    trusted = time.monotonic() + children.jittered(children.RESYNC_S)
    bounded.keep(_secrets, (namespace, name), (secret, trusted), limit=SECRETS_KEPT)


async def secret_value(name: str, key: str, namespace: str) -> str | None:
    """One decoded value of a Secret; None when the Secret or the key is missing."""
    secret = await _secret(name, namespace, usable=lambda found: key in (found.data or {}))
    encoded = None if secret is None else (secret.data or {}).get(key)
    return None if encoded is None else base64.b64decode(encoded).decode()


def _nonblank(secret: Secret) -> int:
    return sum(1 for encoded in (secret.data or {}).values() if base64.b64decode(encoded).strip())


async def secret_nonblank_values(name: str, namespace: str) -> int | None:
    """How many values of a Secret hold more than whitespace; None when the Secret is missing.
    The values themselves are only looked at, never returned."""
    secret = await _secret(name, namespace, usable=lambda found: _nonblank(found) > 0)
    return None if secret is None else _nonblank(secret)


class SecretNotOurs(Exception):
    """A Secret the operator generates has a name that an object it does not control holds."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Secret {name} already exists and was not made by this resource: it is left alone; "
            "delete or rename it, or rename this resource"
        )
        self.name = name


async def generated_secret(
    manifest: dict[str, Any], *, make_data: Callable[[], dict[str, str]] | None = None
) -> dict[str, str]:
    """The data of a Secret the operator generates (a password, a key): created from `manifest`
    when absent, and otherwise read, never rewritten, so that its value outlives reconciles and
    restarts. `make_data`, when given, makes the data (base64-encoded here) only for a Secret to
    create: what is costly to generate (a key pair) is not made on every reconcile.
    Raises `SecretNotOurs` when its owner (`manifest`'s controller) does not control it
    (`ownership.NamesakesChild` while a deleted namesake of its owner does).
    The values are returned to the caller only: never logged."""
    return _decoded(await _generated(manifest, make_data))


async def renewed_secret(
    manifest: dict[str, Any],
    *,
    make_data: Callable[[], dict[str, str]],
    renew: Callable[[dict[str, str]], dict[str, str] | None],
) -> tuple[dict[str, str], bool]:
    """`generated_secret`, whose data `renew` is then asked to replace (None: kept): the data,
    and whether it was renewed. The new data is written only if nobody wrote the Secret since
    it was read (a conflict keeps the old, read again at the next re-check)."""
    secret = await _generated(manifest, make_data)
    data = _decoded(secret)
    fresh = renew(data)
    if fresh is None:
        return data, False
    metadata = manifest["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    assert secret.metadata is not None, "a Secret read has metadata"
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in fresh.items()}
    # A merge patch that carries the resourceVersion read: refused (409) if written since.
    patch = {"metadata": {"resourceVersion": secret.metadata.resourceVersion}, "data": encoded}
    try:
        written = await client().patch(
            Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE
        )
    except lightkube.ApiError as error:
        _secrets.pop((namespace, name), None)
        if error.status.code != 409:
            raise
        return data, False
    _keep_secret(namespace, name, written)
    return fresh, True


async def _generated(
    manifest: dict[str, Any], make_data: Callable[[], dict[str, str]] | None
) -> Secret:
    metadata = manifest["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    owner_uid = metadata["ownerReferences"][0]["uid"]
    # A Secret read before that is not ours is read again: a deleted namesake's may have gone.
    secret = await _secret(name, namespace, usable=lambda found: _controllers(found) == [owner_uid])
    if secret is None:
        if make_data is not None:
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in make_data().items()}
            manifest = {**manifest, "data": encoded}
        try:
            new = Secret.from_dict(manifest)
            assert isinstance(new, Secret)
            secret = await client().create(new)
        except lightkube.ApiError as create_error:
            if create_error.status.code != 409:
                raise
            secret = await client().get(Secret, name, namespace=namespace)
        _keep_secret(namespace, name, secret)
    if _controllers(secret) != [owner_uid]:
        found = secret.to_dict()
        if ownership.held_by_a_deleted_namesake(found, manifest):
            raise await conflict(ownership.Key.of(manifest), found, manifest)
        raise SecretNotOurs(name)
    return secret


def _decoded(secret: Secret) -> dict[str, str]:
    data = secret.data or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _controllers(secret: Secret) -> list[str]:
    refs = (secret.metadata.ownerReferences if secret.metadata else None) or []
    return [ref.uid for ref in refs if ref.controller]


async def secret_exists(name: str, namespace: str) -> bool:
    return await _secret(name, namespace) is not None
