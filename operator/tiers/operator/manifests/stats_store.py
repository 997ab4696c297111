"""Where the stats of a resource are kept, and how its pods reach that Redis with no secret in
their config. Pure.

A RealtimeEndpoint's gateways share its Redis: the one it references (`cache.redisURLSecretRef`:
the URL, which may hold a password, is that Secret's) or the one the operator runs for it, whose
password the operator generates into a Secret the endpoint owns. The operator reads both Secrets,
in memory only, to read the stats back (`stats_reader.target`).

A StreamPipeline or a BatchJob keeps its stats (and a BatchJob its runs' progress) in a small
Redis of its own (`managed(owner, component)`, `redis.STATS`), whatever its model is called
through: a backend directly or an endpoint with any Redis or none. Its job gets that Redis's
password by reference (`PASSWORD_ENV`); it never holds the password of an endpoint's cache.
"""

from __future__ import annotations

import dataclasses

from tiers.api import common, realtime
from tiers.operator.manifests import labels, realtime_children, redis

PASSWORD_ENV = "TIERS_STATS_REDIS_PASSWORD"
"""The variable a job's pods get their stats Redis's password in (their config names it)."""


@dataclasses.dataclass(frozen=True)
class StatsStore:
    url: str | None
    """The Redis's URL; None when it is kept in a Secret (`url_secret`) or there is none."""
    url_secret: common.SecretKeyRef | None = None
    password_secret: common.SecretKeyRef | None = None


NONE = StatsStore(url=None)
"""No Redis: nothing is published, and status shows no stats."""


def managed(owner: labels.Named, component: labels.Component = redis.COMPONENT) -> StatsStore:
    """A Redis the operator runs for `owner`, and the Secret key of its password."""
    secret = common.SecretKeyRef(name=component.name(owner), key=redis.PASSWORD_KEY)
    return StatsStore(url=redis.url(owner, component), password_secret=secret)


def of_endpoint(endpoint: labels.Named, spec: realtime.RealtimeEndpointSpec) -> StatsStore:
    """The Redis a RealtimeEndpoint's gateways share: the referenced one, the managed one, or
    none (an endpoint with no cache, limits or budget needs no Redis)."""
    ref = spec.cache.redis_url_secret_ref
    if ref is not None:
        return StatsStore(url=None, url_secret=ref)
    if realtime_children.needs_redis(spec):
        return managed(endpoint)
    return NONE
