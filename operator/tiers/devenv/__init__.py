"""A local development environment: a real Kubernetes control plane with kwok nodes, and Redis.

`tiers dev up|down|env` and the integration tests' session fixture both use `cluster.up()`.
"""

from tiers.devenv.cluster import DevCluster, control_plane_stopped, down, up

__all__ = ["DevCluster", "control_plane_stopped", "down", "up"]
