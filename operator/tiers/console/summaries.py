"""A custom resource as one line of the console: `summarize(obj)` → `Summary`. Pure.

The Summary is what the overview's cards and the lists show (frontend/src/api/CONTRACT.md):
readiness from the Ready condition (a BatchJob's Succeeded), the printable state, latency,
throughput and cost from status, and the printer columns the CRD declares, evaluated the way
kubectl does for the JSONPaths `tiers.api.kinds` uses.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import alias_generators

from tiers.api import kinds

BY_PLURAL: dict[str, kinds.Kind] = {kind.plural: kind for kind in kinds.ALL}
BY_KIND: dict[str, kinds.Kind] = {kind.kind: kind for kind in kinds.ALL}
STALE_AFTER = datetime.timedelta(minutes=5)
"""Numbers observed longer ago than this are shown as stale (the operator stopped updating); so
are those the status itself marks stale (the stats store did not answer)."""

_FILTER = re.compile(r'^\.status\.conditions\[\?\(@\.type=="([A-Za-z]+)"\)\]\.(\w+)$')


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, frozen=True
    )


class Latency(Model):
    p50_ms: int
    p95_ms: int
    p99_ms: int


class Progress(Model):
    done: int
    total: int | None


class Summary(Model):
    kind: str
    plural: str
    namespace: str
    name: str
    uid: str
    generation: int | None
    observed_generation: int | None
    ready: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    state: str | None
    url: str | None
    latency: Latency | None
    throughput_per_second: float | None
    cost_usd: str | None
    cost_window: str | None
    progress: Progress | None
    columns: dict[str, str]
    window: str | None
    observed_at: str | None
    stale: bool
    created_at: str | None


def kind_of(plural: str) -> kinds.Kind | None:
    return BY_PLURAL.get(plural)


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for found in _status(obj).get("conditions") or ():
        if isinstance(found, Mapping) and found.get("type") == type_:
            return found
    return None


def column_value(obj: Mapping[str, Any], json_path: str) -> Any:
    """The value at a printer column's JSONPath: `.a.b.c`, or a condition's field by type."""
    filtered = _FILTER.match(json_path)
    if filtered:
        found = condition(obj, filtered.group(1))
        return None if found is None else found.get(filtered.group(2))
    value: Any = obj
    for part in json_path.strip(".").split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def columns(kind: kinds.Kind, obj: Mapping[str, Any]) -> dict[str, str]:
    """Every printer column (wide ones too) as text, empty where the object has no value."""
    shown = {}
    for column in kind.columns:
        value = column_value(obj, column.json_path)
        shown[column.name] = "" if value is None else str(value)
    return shown


def summarize(obj: Mapping[str, Any], *, now: datetime.datetime | None = None) -> Summary:
    kind = BY_KIND[obj["kind"]]
    metadata = obj.get("metadata") or {}
    status = _status(obj)
    gate = condition(obj, "Succeeded" if kind is kinds.BATCH_JOB else "Ready")
    if kind is kinds.BATCH_JOB and gate is None:
        gate = condition(obj, "Ready")
    ready = str(gate.get("status")) if gate is not None else "Unknown"
    latency = status.get("latency") if isinstance(status.get("latency"), Mapping) else None
    cost = status.get("cost") if isinstance(status.get("cost"), Mapping) else None
    observed_at = _observed_at(status)
    now = now or datetime.datetime.now(datetime.UTC)
    return Summary(
        kind=kind.kind,
        plural=kind.plural,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=metadata.get("generation"),
        observed_generation=status.get("observedGeneration"),
        ready="True" if ready == "True" else "False" if ready == "False" else "Unknown",
        reason=str(gate.get("reason", "")) if gate is not None else "",
        message=str(gate.get("message", "")) if gate is not None else "",
        state=status.get("state"),
        url=status.get("url"),
        latency=None
        if latency is None
        else Latency(
            p50_ms=int(latency.get("p50Ms", 0)),
            p95_ms=int(latency.get("p95Ms", 0)),
            p99_ms=int(latency.get("p99Ms", 0)),
        ),
        throughput_per_second=throughput(kind, status),
        cost_usd=None if cost is None else _text(cost.get("totalUSD")),
        cost_window=None if cost is None else _cost_window(kind, cost),
        progress=_progress(status),
        columns=columns(kind, obj),
        window=None if latency is None else latency.get("window"),
        observed_at=None if observed_at is None else rfc3339(observed_at),
        stale=any(bool(block and block.get("stale")) for block in (latency, cost))
        or (observed_at is not None and now - observed_at > STALE_AFTER),
        created_at=metadata.get("creationTimestamp"),
    )


def throughput(kind: kinds.Kind, status: Mapping[str, Any]) -> float | None:
    """Requests, events or records per second, as the kind's status counts them."""
    found: Any = None
    if kind is kinds.REALTIME_ENDPOINT:
        found = (status.get("traffic") or {}).get("requestsPerSecond")
    elif kind is kinds.STREAM_PIPELINE:
        found = (status.get("throughput") or {}).get("eventsPerSecond")
    else:
        found = (status.get("progress") or {}).get("recordsPerSecond")
    if found is None:
        found = status.get("requestsPerSecond") if status.get("latency") else None
    return None if found is None else float(found)


def parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    """UTC to the second, so that stamps sort as text."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _observed_at(status: Mapping[str, Any]) -> datetime.datetime | None:
    for block in ("latency", "cost"):
        found = status.get(block)
        if isinstance(found, Mapping):
            moment = parse_time(found.get("observedAt"))
            if moment is not None:
                return moment
    return None


def _cost_window(kind: kinds.Kind, cost: Mapping[str, Any]) -> str:
    if kind is kinds.BATCH_JOB:
        return "run"
    return str(cost.get("window", ""))


def _progress(status: Mapping[str, Any]) -> Progress | None:
    found = status.get("progress")
    if not isinstance(found, Mapping):
        return None
    total = found.get("total")
    return Progress(done=int(found.get("done", 0)), total=None if total is None else int(total))


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
