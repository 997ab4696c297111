"""Pure functions that render the Kubernetes objects a custom resource owns, as plain dicts.

One module per kind renders all its children (`realtime_children`, `stream_children`), over one
module per component (`gateway`, `redis`, `spark_application`) and what they share (`labels`:
names, URLs, ports and the config hash; `security`; `services`; `backends` and `model_client`: a
spec's backend and model block as the data plane's config). The RealtimeEndpoint's entry points
are re-exported here. Nothing here talks to the cluster, reads the clock or the environment.
"""

from tiers.operator.manifests.labels import Owner
from tiers.operator.manifests.realtime_children import (
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
