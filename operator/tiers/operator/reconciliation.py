"""What every kind's reconcile shares: read the spec against its model, compute status, patch it.

`desired_status()` is pure: an object in, the status it should have out. Handlers call it and
hand the result to `write_status()`, which patches only what differs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import kopf
import pydantic
import pydantic.alias_generators

from tiers.api import common, kinds
from tiers.operator import images, kube, metrics, ownership, rechecks, verdicts
from tiers.operator.manifests import labels, model_client

RECONCILING = "Reconciling"
INVALID_SPEC = "InvalidSpec"
PREVIOUS_DELETING = "PreviousObjectDeleting"
"""The reason of an object created again at once whose deleted namesake's children still hold
their names."""
NAMESAKE_RECHECK_S = 3.0
NAMESAKE_RECHECK_MAX_S = 30.0
"""How soon an object that waits for a deleted namesake's children to go looks again (no watch
tells of it): every 3 s at first, then a tenth of how long it has waited, at most every 30 s
(a child a finalizer holds may stay for long), sooner than the periodic re-check."""


def primary_condition(kind: kinds.Kind) -> str:
    """`Succeeded` for run-to-completion kinds, `Ready` for long-running ones."""
    return "Succeeded" if kind is kinds.BATCH_JOB else "Ready"


def spec_error(kind: kinds.Kind, spec: Mapping[str, Any]) -> str | None:
    """What the apiserver could not check about a spec, as a message naming the field."""
    try:
        kind.spec.model_validate(spec)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = "spec" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        return f"{field}: {first['msg']}"
    return None


def desired_status(
    kind: kinds.Kind,
    body: Mapping[str, Any],
    *,
    pending_message: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The status an object of `kind` should carry while its workload is being reconciled."""
    error = spec_error(kind, body.get("spec", {}))
    if error is None:
        verdict = verdicts.Verdict("Unknown", RECONCILING, pending_message)
    else:
        verdict = verdicts.Verdict("False", INVALID_SPEC, error)
    status = verdicts.stamp(body, {primary_condition(kind): verdict}, now=now)
    del status["state"]
    return status


def reconcile(
    kind: kinds.Kind, body: Mapping[str, Any], patch: kopf.Patch, *, pending_message: str
) -> None:
    """One reconcile of an object whose workload this operator version does not manage yet."""
    with metrics.reconciling(kind.kind):
        desired = desired_status(kind, body, pending_message=pending_message, now=now())
        write_status(patch, body, desired)


SpecT = TypeVar("SpecT", bound=pydantic.BaseModel)

IMAGE = os.environ.get("TIERS_IMAGE", "tiers:0.1.0")
"""The image the data plane (gateways, stream jobs) runs: the operator's own."""


def parse_spec(
    kind: kinds.Kind, spec_type: type[SpecT], body: Mapping[str, Any], patch: kopf.Patch
) -> SpecT | None:
    """The typed spec; or None after reporting, as the primary condition, what the apiserver
    could not check about it."""
    try:
        return spec_type.model_validate(body.get("spec", {}))
    except pydantic.ValidationError:
        write_status(patch, body, desired_status(kind, body, pending_message="", now=now()))
        return None


def refuse(
    kind: kinds.Kind, body: Mapping[str, Any], patch: kopf.Patch, verdict: verdicts.Verdict
) -> None:
    """Reports, as the primary condition, why the spec is not acted on (an image not allowed,
    a prompt that cannot be rendered): called before any side effect, so nothing is half made."""
    write_status(patch, body, verdicts.stamp(body, {primary_condition(kind): verdict}, now=now()))


def refused_to_run(
    kind: kinds.Kind,
    body: Mapping[str, Any],
    patch: kopf.Patch,
    *,
    image: str | None,
    call: common.ModelCall,
) -> bool:
    """Whether a stream or batch job's spec is one the operator will not run (its Spark image
    is not allowed, or its prompt cannot be rendered); if so, reported before any side effect."""
    verdict = images.refusal(image, operator_image=IMAGE, patterns=images.allowed_patterns())
    if verdict is None:
        verdict = unrenderable(owner_of(kind, body), call)
    if verdict is None:
        return False
    refuse(kind, body, patch, verdict)
    return True


def unrenderable(owner: labels.Owner, call: common.ModelCall) -> verdicts.Verdict | None:
    """InvalidSpec when the model client's config cannot be made from `spec.model` (a prompt
    that is not a template: objects stored before the apiserver checked it), None when it can.
    Called before any side effect, so that nothing is made for a spec that cannot run."""
    try:
        model_client.model_call(owner, call, endpoint_model="*")
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = ".".join(pydantic.alias_generators.to_camel(str(part)) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return verdicts.Verdict("False", INVALID_SPEC, f"spec.model.{field}: {message}")
    return None


def owner_of(kind: kinds.Kind, body: Mapping[str, Any]) -> labels.Owner:
    """The object as the owner of the children rendered for it."""
    metadata = body["metadata"]
    return labels.Owner(
        api_version=kinds.API_VERSION,
        kind=kind.kind,
        name=metadata["name"],
        namespace=metadata["namespace"],
        uid=metadata["uid"],
    )


def write_status(patch: kopf.Patch, body: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Puts into the patch the status fields that differ from the object's; says if any did.
    The object as last known: a status written during the reconcile (a claim on Kafka topics
    or a Databricks run) is newer than `body`, and a field set back to what `body` had must be
    written all the same."""
    current = rechecks.newest(body).get("status") or {}
    changed = False
    for field, value in desired.items():
        if current.get(field) != value:
            patch.status[field] = value
            changed = True
    return changed


Candidate = tuple[str, str, str]
"""A child some specs have and others not: (apiVersion, kind, name)."""


def possible_leftovers(body: Mapping[str, Any], candidates: list[Candidate]) -> list[Candidate]:
    """The candidates that may exist though no longer rendered, to be read and deleted if ours:
    none for an object whose spec never changed (generation 1) and that no reconcile has seen
    through (no observedGeneration), since every child made for it was rendered from this very
    spec. At a thousand new objects that spares a read per candidate of each."""
    status = body.get("status") or {}
    if body["metadata"].get("generation") == 1 and "observedGeneration" not in status:
        return []
    return candidates


def record_changes(body: kopf.Body, changes: Iterable[kube.Change]) -> None:
    """The children the handler created, changed or deleted, as Normal Events on their owner:
    one per verb (`ChildCreated`: "created ConfigMap chat-gateway, Deployment chat-gateway"),
    not one per child: at a thousand objects each Event is a write the apiserver pays for."""
    for reason, message in kube.Change.summaries(changes):
        kopf.event(body, type="Normal", reason=reason, message=message)


def now() -> datetime.datetime:
    """The time conditions are stamped with: UTC, whole seconds (as metav1.Time serializes)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def child_conflict(
    kind: kinds.Kind,
    body: Mapping[str, Any],
    error: ownership.ChildConflict | kube.SecretNotOurs,
    *,
    waiting: Callable[[str], verdicts.Verdict] | None = None,
) -> verdicts.Verdict:
    """The verdict on a child whose name the object does not hold, the same for every kind.
    The child of a deleted namesake of the object (`ownership.NamesakesChild`: it was deleted
    and created again at once) is waited for, neither adopted nor deleted: Unknown,
    `PREVIOUS_DELETING` (or what `waiting` makes of the message), so Reconciling, not Stalled,
    and the object is looked at again soon, until the garbage collector has deleted the child.
    Anyone else's is a `ChildConflict`, which only the user clears (Stalled)."""
    if not isinstance(error, ownership.NamesakesChild):
        return verdicts.Verdict("False", ownership.CHILD_CONFLICT, str(error))
    metadata = body["metadata"]
    waited_s = (now() - _created(metadata)).total_seconds()
    delay_s = min(NAMESAKE_RECHECK_MAX_S, max(NAMESAKE_RECHECK_S, waited_s / 10))
    rechecks.nudge_later(kind.kind, metadata["uid"], delay_s=delay_s)
    if waiting is not None:
        return waiting(str(error))
    return verdicts.Verdict(
        "Unknown", PREVIOUS_DELETING, f"waiting: {error}; its children are made once it is gone"
    )


def _created(metadata: Mapping[str, Any]) -> datetime.datetime:
    created = metadata.get("creationTimestamp")
    if not created:
        return now()
    return datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
