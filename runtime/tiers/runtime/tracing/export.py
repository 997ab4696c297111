"""The export of ended spans: a bounded queue, batches sent over OTLP/HTTP in the background
(or at once, `send_now`, for a program without an event loop).

`Exporter.add` is what a request pays: a length test and an append. A task on the same event
loop wakes every `export_interval_s`, or as soon as a batch is full, encodes the queued spans a
few at a time (yielding to requests between chunks) and posts them to the collector with the
gateway's own HTTP client; a caller never waits on it. A collector that cannot be reached, times
out or answers what OTLP/HTTP calls retryable (429, 502, 503, 504) gets the batch again after a
full-jitter backoff, Retry-After honoured, `RETRIES.max_attempts` tries in all (the same
`providers.retries` every model call uses); meanwhile new spans queue behind it, up to the bound.
A full queue drops new spans and counts them (`counted("dropped", n)`); a batch still not taken
after its tries, or refused outright (another 4xx, 5xx), is lost, counted too, and logged.

`drain_threadsafe` is for a program that may be ended without warning (a Spark worker): another
thread waits, a bounded time, until what was queued before has been sent; not at all while the
collector is failing, so that one that is away never costs that thread more than once.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

from tiers.runtime.providers import config as providers_config
from tiers.runtime.providers import failures, http1, retries
from tiers.runtime.tracing import config, otlp, spans

log = logging.getLogger(__name__)

ENCODE_CHUNK = 32
"""Spans written into the request between two turns of the event loop (about 0.5 ms here)."""

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""The answers OTLP/HTTP says a client sends the batch again after (with backoff)."""
RETRIES = providers_config.RetryConfig(max_attempts=4, initial_backoff_ms=500, max_backoff_ms=5000)
"""A batch's tries: waits of up to 0.5, 1 and 2 s between them (full jitter), or what
Retry-After asks up to 5 s; a collector that asks for longer loses the batch at once."""

Counted = Callable[[str, int], None]
"""Told how many spans went which way: "exported", "dropped" (queue full) or "failed"."""


def _not_counted(outcome: str, count: int) -> None:
    pass


class Exporter:
    def __init__(
        self,
        settings: config.TracingConfig,
        *,
        resource: Mapping[str, spans.AttributeValue],
        counted: Counted = _not_counted,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._url = settings.traces_url
        self._resource = dict(resource)
        self._counted = counted
        self._queue: collections.deque[spans.Span] = collections.deque()
        self._max = settings.max_queue_spans
        self._batch = settings.max_export_batch
        self._wake = asyncio.Event()
        self._pool = http1.Pool(max_per_host=2)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._added = self._settled = 0
        """Spans queued so far, and of those the ones sent or given up on."""
        self._failing = False
        """Whether the collector's last answer was a failure (none, or one worth another try)."""
        self._progress = asyncio.Event()

    @property
    def queued(self) -> int:
        """Spans waiting for export."""
        return len(self._queue)

    def add(self, span: spans.Span) -> None:
        queue = self._queue
        if len(queue) >= self._max:
            self._counted("dropped", 1)
            return
        queue.append(span)
        self._added += 1
        if len(queue) == self._batch:
            self._wake.set()

    def add_threadsafe(self, ended: list[spans.Span]) -> None:
        """Queues `ended` from a thread other than the exporter's (a Spark task's), at once."""
        assert self._loop is not None, "the exporter was not started"
        self._loop.call_soon_threadsafe(self._add_all, ended)

    def _add_all(self, ended: list[spans.Span]) -> None:
        for span in ended:
            self.add(span)

    def drain_threadsafe(self, timeout_s: float) -> bool:
        """From a thread other than the exporter's: waits until every span queued before
        (`add_threadsafe` included) has been sent or given up on, at most `timeout_s`; at once
        when the collector is failing. False: it is failing, or the time ran out."""
        assert self._loop is not None, "the exporter was not started"
        waiting = asyncio.run_coroutine_threadsafe(self.drained(), self._loop)
        try:
            return waiting.result(timeout_s)
        except concurrent.futures.TimeoutError:
            waiting.cancel()
            return False

    async def drained(self) -> bool:
        """Wakes the export and returns once the spans queued before the call have been sent or
        given up on, or as soon as the collector fails; whether it did not fail."""
        target = self._added
        while self._settled < target and not self._failing:
            self._progress.clear()
            self._wake.set()
            await self._progress.wait()
        return not self._failing

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="span-export")

    async def close(self) -> None:
        """Stops the task and sends what is queued, within the export timeout."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.export_timeout_s):
                await self.flush()
        await self._pool.close()

    async def flush(self) -> None:
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), self._batch))]
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                # Stopped mid-send (or mid-backoff) by `close`, which sends what is queued.
                queue.extendleft(reversed(batch))
                raise
            self._settled += len(batch)
            self._progress.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.export_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def _encode(self, batch: list[spans.Span]) -> bytes:
        request = otlp.Request(self._resource)
        for start in range(0, len(batch), ENCODE_CHUNK):
            for span in batch[start : start + ENCODE_CHUNK]:
                request.add(span)
            # Requests waiting on the loop go between chunks: a batch never stalls them long.
            await asyncio.sleep(0)
        return request.serialize()

    async def _send(self, batch: list[spans.Span]) -> None:
        outcome: http1.Response | failures.Failure
        try:
            body = await self._encode(batch)
            outcome, attempts = await retries.send_with_retries(
                self._post, body, policy=RETRIES, rng=self._rng, sleep=self._sleep
            )
        except ValueError as error:
            # A URL the client cannot call (a port out of range, which the config's pattern
            # lets through) or a string protobuf cannot hold: no try would do better. The batch
            # is lost and counted; the export goes on (its task never dies of it).
            outcome, attempts = failures.Failure(f"{type(error).__name__}: {error}"), 1
        if isinstance(outcome, failures.Failure):
            problem = outcome.message
        elif 200 <= outcome.status < 300:
            self._counted("exported", len(batch))
            return
        else:
            problem = f"HTTP {outcome.status}"
        self._counted("failed", len(batch))
        log.warning(
            "%d spans not exported to %s after %d tries: %s",
            len(batch), self._url, attempts, problem,
        )  # fmt: skip

    async def _post(self, body: bytes) -> http1.Response | failures.Failure:
        """One try: the collector's answer, or a failure worth another try."""
        try:
            response = await self._pool.request(
                "POST",
                self._url,
                headers={"content-type": otlp.CONTENT_TYPE},
                body=body,
                timeout_s=self._settings.export_timeout_s,
            )
        except (http1.ClientError, TimeoutError, OSError) as error:
            self._failed(True)
            timeout_ms = round(self._settings.export_timeout_s * 1000)
            return failures.from_exception(error, timeout_ms=timeout_ms)
        self._failed(response.status in RETRYABLE_STATUSES)
        if response.status in RETRYABLE_STATUSES:
            return failures.Failure(
                f"HTTP {response.status}",
                response.status,
                failures.parse_retry_after(response.headers),
            )
        return response

    def _failed(self, failing: bool) -> None:
        self._failing = failing
        if failing:
            self._progress.set()  # a drain waiting on it returns


def tracer(
    settings: config.TracingConfig,
    *,
    resource: Mapping[str, spans.AttributeValue],
    counted: Counted = _not_counted,
) -> tuple[spans.Tracer, Exporter]:
    """A tracer whose ended spans go to a new exporter (start it on the running loop)."""
    exporter = Exporter(
        settings, resource={"service.name": settings.service_name, **resource}, counted=counted
    )
    return spans.Tracer(exporter.add, sample_ratio=settings.sample_ratio), exporter


def send_now(
    settings: config.TracingConfig,
    ended: list[spans.Span],
    *,
    resource: Mapping[str, spans.AttributeValue],
) -> None:
    """Sends `ended` and returns, for a program with no event loop of its own (a batch run's
    driver); a failure is counted in the log only, never raised."""

    async def main() -> None:
        exporter = Exporter(settings, resource={"service.name": settings.service_name, **resource})
        for span in ended:
            exporter.add(span)
        await exporter.close()

    asyncio.run(main())
