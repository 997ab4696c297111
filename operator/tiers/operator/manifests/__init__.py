"""Pure functions that render the Kubernetes objects a custom resource owns, as plain dicts.

The RealtimeEndpoint handler calls `desired_children()` (from `manifests.realtime`, re-exported
here) and server-side-applies the result; nothing here talks to the cluster, reads the clock or
the environment.
"""

from tiers.operator.manifests.labels import Owner
from tiers.operator.manifests.realtime import (
    REDIS_URL_ENV,
    desired_children,
    gateway_config,
    gateway_url,
    needs_redis,
    runs_managed_redis,
)

__all__ = [
    "REDIS_URL_ENV",
    "Owner",
    "desired_children",
    "gateway_config",
    "gateway_url",
    "needs_redis",
    "runs_managed_redis",
]
