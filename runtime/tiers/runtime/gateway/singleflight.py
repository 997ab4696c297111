"""Single-flight: identical concurrent cache misses share one upstream call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[T]] = {}

    async def do(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Runs `call` once per key at a time; returns its result and whether it was shared."""
        pending = self._calls.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            result = await call()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            # Waiters see the error; the leader re-raises it. Mark it retrieved for the loop.
            future.exception()
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._calls[key]
