"""The model-provider layer: what the gateway, the model client and the jobs above it share
about calling a model.

- `config`: the backend, retry, circuit-breaker and price models (re-exported here: they are
  the contract the operator renders, and importing them loads nothing else);
- `routes`: chat, completions, embeddings and their upstream paths;
- `backends`: a backend's URL, headers and payload (OpenAI, Azure OpenAI, OpenAI-compatible),
  and one attempt of a call;
- `failures`: which failures are worth retrying, and reading an error body and Retry-After;
- `retries`: the one send-with-retries (backoff, Retry-After, the breaker);
- `breakers`: the circuit breaker;
- `http1`: the lean HTTP/1.1 client every call goes through.

The gateway adds fallback across backends and a breaker per backend on top
(`gateway.upstream`); the model client adds many rows per request and a result per row
(`modelcall.client`).
"""

from tiers.runtime.providers.config import (
    BackendConfig,
    CircuitBreakerConfig,
    EntraConfig,
    PriceConfig,
    Provider,
    RetryConfig,
    backend_key_env,
    parse_backend_flag,
    price_overrides,
)

__all__ = [
    "BackendConfig",
    "CircuitBreakerConfig",
    "EntraConfig",
    "PriceConfig",
    "Provider",
    "RetryConfig",
    "backend_key_env",
    "parse_backend_flag",
    "price_overrides",
]
