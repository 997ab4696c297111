"""The three kinds and their Events as a caller reads them from the apiserver, as plain dicts.

Every function takes the client of the caller (`identity`), so the apiserver decides what they
may see; a refusal surfaces as lightkube's ApiError, which `errors` passes on to the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import lightkube
from lightkube import generic_resource
from lightkube.resources import core_v1

from tiers.api import kinds
from tiers.console import errors, summaries

RESOURCES = {
    kind.plural: generic_resource.create_namespaced_resource(
        kinds.GROUP, kinds.VERSION, kind.kind, kind.plural
    )
    for kind in kinds.ALL
}
MAX_EVENTS = 50


def _as_dict(kind: kinds.Kind, found: Any) -> dict[str, Any]:
    obj: dict[str, Any] = found.to_dict()
    obj.setdefault("apiVersion", kinds.API_VERSION)
    obj.setdefault("kind", kind.kind)
    return obj


def _kind(plural: str) -> kinds.Kind:
    kind = summaries.kind_of(plural)
    if kind is None:
        allowed = ", ".join(summaries.BY_PLURAL)
        raise errors.ConsoleError(404, "NotFound", f"no kind {plural!r}: one of {allowed}")
    return kind


async def list_all(client: lightkube.AsyncClient, namespace: str | None) -> list[dict[str, Any]]:
    """Every object of the three kinds in `namespace` (every namespace when None)."""
    found = await asyncio.gather(*(list_kind(client, kind, namespace) for kind in kinds.ALL))
    return [obj for objs in found for obj in objs]


async def list_kind(
    client: lightkube.AsyncClient, kind: kinds.Kind, namespace: str | None
) -> list[dict[str, Any]]:
    listed = client.list(RESOURCES[kind.plural], namespace=namespace or lightkube.ALL_NS)
    return [_as_dict(kind, found) async for found in listed]


async def get(
    client: lightkube.AsyncClient, plural: str, namespace: str, name: str
) -> dict[str, Any]:
    kind = _kind(plural)
    try:
        found = await client.get(RESOURCES[plural], name, namespace=namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            raise errors.ConsoleError(
                404, "NotFound", f"no {kind.kind} {name!r} in namespace {namespace!r}"
            ) from error
        raise
    return _as_dict(kind, found)


async def events(client: lightkube.AsyncClient, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The object's recent Events, newest first (at most `MAX_EVENTS`)."""
    listed = client.list(core_v1.Event, namespace=namespace, fields={"involvedObject.uid": uid})
    found = [event async for event in listed]
    shown = [
        {
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "count": event.count or 1,
            "lastTimestamp": _stamp(
                event.lastTimestamp or event.eventTime or event.metadata.creationTimestamp
            ),
        }
        for event in found
    ]
    shown.sort(key=lambda event: event["lastTimestamp"] or "", reverse=True)
    return shown[:MAX_EVENTS]


async def namespaces(client: lightkube.AsyncClient) -> list[str]:
    """The namespaces the caller may list; else those holding objects the caller can see."""
    try:
        return sorted([ns.metadata.name async for ns in client.list(core_v1.Namespace)])  # type: ignore[union-attr,misc]
    except lightkube.ApiError as error:
        if error.status.code != 403:
            raise
    return sorted({obj["metadata"]["namespace"] for obj in await list_all(client, None)})


class Watch:
    """The objects of the three kinds there are (`initial`, listed by `start`, which raises on
    a refusal before anything is streamed), then every change after that list (`changes`)."""

    def __init__(
        self,
        client: lightkube.AsyncClient,
        namespace: str | None,
        initial: list[dict[str, Any]],
        versions: dict[str, str],
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.initial = initial
        self._versions = versions

    @classmethod
    async def start(cls, client: lightkube.AsyncClient, namespace: str | None) -> Watch:
        initial: list[dict[str, Any]] = []
        versions = {}
        for kind in kinds.ALL:
            listed = client.list(RESOURCES[kind.plural], namespace=namespace or lightkube.ALL_NS)
            initial.extend([_as_dict(kind, found) async for found in listed])
            versions[kind.plural] = listed.resourceVersion
        return cls(client, namespace, initial, versions)

    async def changes(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """("upsert" | "delete", object) for each change; raises when a watch fails."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | Exception] = asyncio.Queue(1000)

        async def follow(kind: kinds.Kind) -> None:
            try:
                async for event_type, found in self.client.watch(
                    RESOURCES[kind.plural],
                    namespace=self.namespace or lightkube.ALL_NS,
                    resource_version=self._versions[kind.plural],
                ):
                    change = "delete" if event_type == "DELETED" else "upsert"
                    await queue.put((change, _as_dict(kind, found)))
            except Exception as error:  # handed to the reader, which raises it
                await queue.put(error)

        tasks = [asyncio.create_task(follow(kind)) for kind in kinds.ALL]
        try:
            while True:
                got = await queue.get()
                if isinstance(got, Exception):
                    raise got
                yield got
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task


def _stamp(value: Any) -> str | None:
    if value is None:
        return None
    return summaries.rfc3339(value) if hasattr(value, "astimezone") else str(value)
