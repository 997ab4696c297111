"""The realtime gateway: an OpenAI-compatible ASGI app with auth, rate limits, a Redis-backed
cache with an in-process L1 and single-flight, retries, fallbacks, a circuit breaker and cost.

The operator renders a `GatewayConfig` (its backends, retries and prices as
`tiers.runtime.providers` configures them) into each RealtimeEndpoint's ConfigMap; the gateway pod
runs `python -m tiers.runtime.gateway --config <file>`. The app itself is
`tiers.runtime.gateway.app.Gateway`; it is not imported here, so that the operator, which only
needs the config models, does not load the server's dependencies.
"""

from tiers.runtime.gateway.config import GatewayConfig

__all__ = ["GatewayConfig"]
