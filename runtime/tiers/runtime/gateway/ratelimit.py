"""Per-key request and token limits shared by every replica, by one atomic Redis script.

The algorithm is GCRA (a token bucket kept as one timestamp): a key may spend up to its
per-minute limit at once and regains it at limit/60 per second. The script reads Redis's own
clock, so replicas with skewed clocks agree. When Redis is unreachable the limiter lets requests
through: an outage of the limiter must not become an outage of the endpoint.

The request check can also read a cache entry in the same script (`admit_requests(fetch=key)`),
so that a cache miss costs one Redis round trip instead of two.
"""

from __future__ import annotations

import dataclasses

from tiers.runtime.gateway import availability, config, errors, rediswire

WINDOW_US = 60_000_000

# KEYS[1]: the bucket; KEYS[2], optional: a key to GET once admitted. ARGV: microseconds per
# unit, cost in units, 1 to force (never reject).
# Returns {allowed (1/0), microseconds until the cost would fit, KEYS[2]'s value or false}.
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
if KEYS[2] then
  return {1, 0, redis.call('GET', KEYS[2])}
end
return {1, 0}
"""
SCRIPT = rediswire.Script(GCRA)


class Unanswered:
    """Redis was not asked or did not answer (distinct from a key that holds nothing)."""


UNANSWERED = Unanswered()
Fetched = bytes | None | Unanswered


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
        redis_client: rediswire.Client | None,
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
        self._redis = redis_client

    @property
    def active(self) -> bool:
        return self._redis is not None and (self._requests or self._tokens) is not None

    @property
    def checks_requests(self) -> bool:
        """Whether `admit_requests` asks Redis (and so can fetch a key on the way)."""
        return self._redis is not None and self._requests is not None

    async def admit_requests(self, tenant: str, *, fetch: str | None = None) -> Fetched:
        """Raises a 429 GatewayError when one more request does not fit the key's limit.

        With `fetch`, the same round trip GETs that key for the caller: the value (or None),
        or `UNANSWERED` when Redis could not be asked.
        """
        if self._requests is None:
            return UNANSWERED
        return await self._spend(tenant, self._requests, 1, fetch=fetch)

    async def admit_tokens(self, tenant: str, estimated: int) -> None:
        """Reserves the estimated tokens of an upstream call, or raises a 429 GatewayError."""
        if self._tokens is not None:
            await self._spend(tenant, self._tokens, estimated)

    async def settle_tokens(self, tenant: str, *, estimated: int, actual: int) -> None:
        """Corrects the token bucket once the real usage is known (refunds or charges more)."""
        if self._tokens is not None and actual != estimated:
            await self._spend(tenant, self._tokens, actual - estimated, force=True)

    async def _spend(
        self, tenant: str, limit: Limit, cost: int, *, force: bool = False, fetch: str | None = None
    ) -> Fetched:
        if self._redis is None:
            return UNANSWERED
        key = f"{self._prefix}:{tenant}:{'req' if limit is self._requests else 'tok'}"
        keys = (key,) if fetch is None else (key, fetch)
        try:
            reply = await self._redis.run(
                SCRIPT, keys, (limit.interval_us, cost, 1 if force else 0)
            )
        except rediswire.Error as error:
            self._redis_availability.failed(error, "rate limits not enforced")
            return UNANSWERED
        self._redis_availability.succeeded()
        if not reply[0]:
            raise errors.rate_limited(limit.name, int(reply[1]) / 1_000_000)
        return reply[2] if len(reply) > 2 else None
