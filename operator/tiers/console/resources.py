"""The console's read API over the three kinds: lists, the SSE watch, a resource's detail (with
its Events and YAML) and its time series. Everything is read with the caller's identity."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Annotated, Any

import fastapi
import yaml

from tiers.console import identity, objects, series, sse, state, summaries

router = fastapi.APIRouter(prefix="/api/v1")

Namespace = Annotated[str | None, fastapi.Query(max_length=63, pattern=r"^[a-z0-9-]+$")]


def caller(request: fastapi.Request, *, write: bool = False) -> identity.Caller:
    return state.of(request).identities.caller(request.headers.get("authorization"), write=write)


def summary_json(obj: dict[str, Any]) -> dict[str, Any]:
    return summaries.summarize(obj).model_dump(by_alias=True)


@router.get("/namespaces")
async def namespaces(request: fastapi.Request) -> dict[str, Any]:
    return {"items": await objects.namespaces(caller(request).client)}


@router.get("/resources")
async def resources(request: fastapi.Request, namespace: Namespace = None) -> dict[str, Any]:
    found = await objects.list_all(caller(request).client, namespace)
    return {"items": [summary_json(obj) for obj in found]}


@router.get("/watch")
async def watch(request: fastapi.Request, namespace: Namespace = None) -> fastapi.Response:
    started = await objects.Watch.start(caller(request).client, namespace)

    async def events() -> AsyncIterator[bytes]:
        listed = [summary_json(obj) for obj in started.initial]
        for summary in listed:
            yield sse.event("upsert", summary)
        # The whole initial list by key: a page that reconnects drops what is not in it (deleted
        # while it was away, so no delete event comes for it).
        keys = [f"{s['plural']}/{s['namespace']}/{s['name']}" for s in listed]
        yield sse.event("synced", {"keys": keys})
        async for change, obj in started.changes():
            yield sse.event(change, summary_json(obj))

    return sse.response(events())


@router.get("/resources/{plural}/{namespace}/{name}")
async def detail(
    request: fastapi.Request, plural: str, namespace: str, name: str
) -> dict[str, Any]:
    client = caller(request).client
    obj = await objects.get(client, plural, namespace, name)
    found_events = await objects.events(client, namespace, obj["metadata"]["uid"])
    shown = _without_noise(obj)
    return {
        "summary": summary_json(obj),
        "object": shown,
        "yaml": yaml.safe_dump(shown, sort_keys=False),
        "events": found_events,
    }


@router.get("/resources/{plural}/{namespace}/{name}/series")
async def points(
    request: fastapi.Request,
    plural: str,
    namespace: str,
    name: str,
    range_: Annotated[str, fastapi.Query(alias="range", pattern="^(15m|1h|6h|24h)$")] = "1h",
) -> dict[str, Any]:
    # The caller must be able to read the resource itself: the series are no wider a view.
    await objects.get(caller(request).client, plural, namespace, name)
    since = datetime.datetime.now(datetime.UTC) - series.RANGES[range_]
    found = state.of(request).rings.points((plural, namespace, name), since=since)
    return {"points": [point.model_dump(by_alias=True) for point in found]}


def _without_noise(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as a person reads it: no managedFields, no last-applied annotations."""
    metadata = dict(obj.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if not key.endswith("last-applied-configuration")
        and not key.endswith("last-handled-configuration")
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**obj, "metadata": metadata}
