"""The model client for synchronous callers: Spark's `mapInPandas`/`mapInArrow` functions.

Spark runs those functions in Python worker processes that it reuses between tasks, from one or
more threads. This module keeps, per process, one event loop in a daemon thread and one
`ModelClient` per distinct config, so connections and their keep-alive outlive a task:

    def score(batches):
        for frame in batches:
            found = modelcall.score_batch(config_json, frame.to_dict("records"), list(frame.key))
            yield pandas.DataFrame(modelcall.as_columns(found))

A process forked after the loop started (pyspark's daemon forks workers) starts its own.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tiers.runtime.modelcall import client, config, raw, results

_CLOSE_TIMEOUT_S = 10.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_clients: dict[str, client.ModelClient] = {}
# A forked child inherits the parent's clients but not its loop thread; they are kept, never
# used, so that collecting them does not warn about sessions it cannot close.
_inherited: list[client.ModelClient] = []


def score_batch(
    settings: config.ModelCallConfig | str,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    headers: Sequence[Mapping[str, str] | None] | None = None,
    finished: client.Finished | None = None,
) -> list[results.RowResult]:
    """`ModelClient.score` from synchronous code; `settings` may be the config's JSON."""
    return submit_batch(settings, rows, keys, headers, finished).result()


def submit_batch(
    settings: config.ModelCallConfig | str,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    headers: Sequence[Mapping[str, str] | None] | None = None,
    finished: client.Finished | None = None,
) -> concurrent.futures.Future[list[results.RowResult]]:
    """Start scoring and return at once, so a caller can read its next batch meanwhile."""
    model_client, loop = _client_and_loop(settings)
    return asyncio.run_coroutine_threadsafe(
        model_client.score(rows, keys=keys, headers=headers, finished=finished), loop
    )


def event_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop (in its daemon thread), for other background work of a Spark
    worker that must outlive a task, such as exporting its spans."""
    with _lock:
        return _ensure_loop()


def send_raw_batch(
    settings: config.ModelCallConfig | str, requests: Sequence[raw.RawRequest]
) -> list[raw.RawReply]:
    """`ModelClient.send_raw` from synchronous code; `settings` may be the config's JSON."""
    return submit_raw_batch(settings, requests).result()


def submit_raw_batch(
    settings: config.ModelCallConfig | str, requests: Sequence[raw.RawRequest]
) -> concurrent.futures.Future[list[raw.RawReply]]:
    """Start sending prepared bodies and return at once, as `submit_batch` does for rows."""
    model_client, loop = _client_and_loop(settings)
    return asyncio.run_coroutine_threadsafe(model_client.send_raw(requests), loop)


def client_for(settings: config.ModelCallConfig | str) -> client.ModelClient:
    """This process's client for `settings`: the same object for every equal config."""
    return _client_and_loop(settings)[0]


def _client_and_loop(
    settings: config.ModelCallConfig | str,
) -> tuple[client.ModelClient, asyncio.AbstractEventLoop]:
    if isinstance(settings, str):
        settings = config.ModelCallConfig.model_validate_json(settings)
    cache_key = settings.model_dump_json()
    with _lock:
        loop = _ensure_loop()
        found = _clients.get(cache_key)
        if found is None:
            found = _clients[cache_key] = client.ModelClient(settings)
        return found, loop


def close_all() -> None:
    """Close every client (their connections); the loop stays for the next call."""
    with _lock:
        closing = list(_clients.values())
        _clients.clear()
        loop = _loop
    if loop is None or not closing:
        return

    async def close() -> None:
        await asyncio.gather(*(c.close() for c in closing))

    asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=_CLOSE_TIMEOUT_S)


def _ensure_loop() -> asyncio.AbstractEventLoop:
    """This process's loop, started on first use. Caller holds `_lock`."""
    global _loop
    if _loop is not None:
        return _loop
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    threading.Thread(target=run, name="tiers-modelcall", daemon=True).start()
    started.wait()
    _loop = loop
    return loop


def _forget_the_parents_loop() -> None:
    global _loop, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _loop = None
    _inherited.extend(_clients.values())
    _clients.clear()


atexit.register(close_all)
os.register_at_fork(after_in_child=_forget_the_parents_loop)
