"""The endpoint's monthly budget (`spec.budget.monthlyUSD`): once the calendar month's spend
reaches it, calls that would reach a backend are answered 429 insufficient_quota.

The month's spend lives in Redis, one integer counter of micro-USD per endpoint and UTC month
(`stats.spend`, kept 35 days), shared by every replica.

Why a local view instead of a Redis call per request: the check sits on the hot path of every
model call, and a round trip there costs more than the rest of the check many times over. Each
replica therefore adds its calls' cost to a local tally and, once a second, adds the tally to
the Redis counter with INCRBY and reads the month's total back in the same round trip. The check
is arithmetic on two local numbers: the last total read plus this replica's spend since.

What that costs: a replica learns of the other replicas' spend up to about a second late, so
together they may overshoot the budget by up to about one second of spend across all replicas,
plus the calls already in flight when it was reached. A replica's own spend counts at once.

Redis down: like the rate limiter, the budget fails open. It never refuses a call because Redis
is unreachable; it keeps checking against the last total it read plus its own spend, and adds
what it spent meanwhile once Redis is back. A new month starts from zero even while Redis is down.
"""

from __future__ import annotations

import decimal
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
import redis.exceptions

from tiers.runtime import periodic
from tiers.runtime.gateway import errors
from tiers.runtime.stats import spend

log = logging.getLogger(__name__)


class Budget:
    """One replica's view of the month's spend; `check()` before a backend call, `add()` after."""

    def __init__(
        self,
        limit_usd: decimal.Decimal | None,
        endpoint: str,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit_usd = limit_usd
        self._endpoint = endpoint
        self._clock = clock
        self._month = spend.month_key(endpoint, clock())
        self._known_micro = 0
        """The month's total in Redis as last read (this replica's flushed spend included)."""
        self._unflushed = decimal.Decimal(0)
        self._flushing = periodic.Periodic(self.flush, interval_s)

    @property
    def spent_usd(self) -> decimal.Decimal:
        """The month's spend as this replica knows it."""
        return self._known_micro * spend.MICRO_USD + self._unflushed

    def check(self) -> None:
        """Raises the 429 insufficient_quota GatewayError once the month's spend is the limit."""
        if self.limit_usd is not None and self.spent_usd >= self.limit_usd:
            raise errors.insufficient_quota(self.limit_usd)

    def add(self, cost_usd: decimal.Decimal) -> None:
        if self.limit_usd is not None and cost_usd:
            self._unflushed += cost_usd

    async def start(self, client: aioredis.Redis) -> None:
        """Reads the month's spend before the first call (a new replica of an endpoint past its
        budget refuses at once), then keeps it fresh in the background."""
        if self.limit_usd is not None:
            await self.flush(client)
            self._flushing.start(client)

    async def stop(self, client: aioredis.Redis) -> None:
        if self.limit_usd is not None:
            await self._flushing.stop(client)

    async def flush(self, client: aioredis.Redis) -> None:
        """Adds the local tally to the month's counter and reads the total back, in one round
        trip; on a Redis error the tally stays local, to be added by a later flush."""
        month = spend.month_key(self._endpoint, self._clock())
        if month != self._month:
            self._month, self._known_micro = month, 0
        micro, _ = spend.whole_micro_usd(self._unflushed)
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.incrby(month, micro)
                pipe.expire(month, spend.KEY_TTL_S)
                total, _ = await pipe.execute()
        except (redis.exceptions.RedisError, OSError) as error:
            log.debug("budget flush deferred: %s", type(error).__name__)
            return
        # Calls answered during the round trip added to the tally: take off only what was sent.
        self._known_micro = int(total)
        self._unflushed -= micro * spend.MICRO_USD
