"""The console's own watch of the three kinds, which feeds every status observation into the
series rings (`series.Rings`), and keeps them on disk. Runs for the console's lifetime with the
console's own ServiceAccount (read-only on the three kinds); it serves no caller: a caller reads
a series only after reading its resource with their own identity."""

from __future__ import annotations

import asyncio
import datetime
import logging
import pathlib

import lightkube

from tiers.console import objects, series

log = logging.getLogger(__name__)

SAVE_SECONDS = 30.0
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


async def record(
    client: lightkube.AsyncClient,
    rings: series.Rings,
    *,
    namespaces: tuple[str, ...] = (),
    path: pathlib.Path | None = None,
) -> None:
    """Watches until cancelled (every namespace, or each of `namespaces`)."""
    if path is not None:
        rings.load(path)
    tasks = [
        asyncio.create_task(_follow(client, rings, namespace))
        for namespace in (namespaces or (None,))
    ]
    try:
        while True:
            await asyncio.sleep(SAVE_SECONDS)
            rings.prune(now=datetime.datetime.now(datetime.UTC))
            if path is not None and rings.dirty:
                await asyncio.to_thread(rings.save, path)
    finally:
        for task in tasks:
            task.cancel()
        if path is not None and rings.dirty:
            rings.save(path)


async def _follow(
    client: lightkube.AsyncClient, rings: series.Rings, namespace: str | None
) -> None:
    failures = 0
    while True:
        try:
            watch = await objects.Watch.start(client, namespace)
            for obj in watch.initial:
                rings.record(obj)
            failures = 0
            async for change, obj in watch.changes():
                if change == "delete":
                    rings.forget(series.key_of(obj))
                else:
                    rings.record(obj)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            log.warning("series watch failed (%s); again in %.0f s", type(error).__name__, delay)
            await asyncio.sleep(delay)
