"""Per-key request and token limits shared by every replica, by one atomic Redis script.

The algorithm is GCRA (a token bucket kept as one timestamp): a key may spend up to its
per-minute limit at once and regains it at limit/60 per second. The script reads Redis's own
clock, so replicas with skewed clocks agree. When Redis is unreachable the limiter lets requests
through: an outage of the limiter must not become an outage of the endpoint.
"""

from __future__ import annotations

import dataclasses

import redis.asyncio as aioredis
import redis.exceptions

from tiers.runtime.gateway import availability, config, errors

WINDOW_US = 60_000_000

# KEYS[1]: the bucket. ARGV: microseconds per unit, cost in units, 1 to force (never reject).
# Returns {allowed (1/0), microseconds until the cost would fit}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - 60000000
if cost > 0 and ARGV[3] ~= '1' and allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
if new_tat > now then
  local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
end
return {1, 0}
"""


@dataclasses.dataclass(frozen=True)
class Limit:
    name: str
    per_minute: int

    @property
    def interval_us(self) -> float:
        return WINDOW_US / self.per_minute


class RateLimiter:
    def __init__(
        self,
        limits: config.RateLimitConfig,
        redis_client: aioredis.Redis | None,
        redis_availability: availability.Availability,
        *,
        endpoint: str,
    ) -> None:
        self._redis_availability = redis_availability
        self._prefix = f"tiers:rl:{endpoint}"
        self._requests = (
            Limit("requests per minute", limits.requests_per_minute)
            if limits.requests_per_minute
            else None
        )
        self._tokens = (
            Limit("tokens per minute", limits.tokens_per_minute)
            if limits.tokens_per_minute
            else None
        )
        self._script = redis_client.register_script(GCRA) if redis_client is not None else None

    @property
    def active(self) -> bool:
        return self._script is not None and (self._requests or self._tokens) is not None

    async def admit_requests(self, tenant: str) -> None:
        """Raises a 429 GatewayError when one more request does not fit the key's limit."""
        if self._requests is not None:
            await self._spend(tenant, self._requests, 1)

    async def admit_tokens(self, tenant: str, estimated: int) -> None:
        """Reserves the estimated tokens of an upstream call, or raises a 429 GatewayError."""
        if self._tokens is not None:
            await self._spend(tenant, self._tokens, estimated)

    async def settle_tokens(self, tenant: str, *, estimated: int, actual: int) -> None:
        """Corrects the token bucket once the real usage is known (refunds or charges more)."""
        if self._tokens is not None and actual != estimated:
            await self._spend(tenant, self._tokens, actual - estimated, force=True)

    async def _spend(self, tenant: str, limit: Limit, cost: int, *, force: bool = False) -> None:
        if self._script is None:
            return
        key = f"{self._prefix}:{tenant}:{'req' if limit is self._requests else 'tok'}"
        try:
            allowed, wait_us = await self._script(
                keys=[key], args=[limit.interval_us, cost, 1 if force else 0]
            )
        except (redis.exceptions.RedisError, OSError) as error:
            self._redis_availability.failed(error, "rate limits not enforced")
            return
        self._redis_availability.succeeded()
        if not allowed:
            raise errors.rate_limited(limit.name, int(wait_us) / 1_000_000)
