"""The mock backend's settings: address, key, latency, faults and model names.

`__main__` builds a `MockConfig` from flags; tests build one directly and hand it to
`server.running`. Values are frozen; what tests change at run time lives in `faults.FaultState`.
"""

import dataclasses

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")


@dataclasses.dataclass(frozen=True)
class Latency:
    """How long a reply takes: `fixed_ms` + uniform(0, `jitter_ms`) + lognormal(`p50_ms`, `p95_ms`).

    The lognormal part is off while `p50_ms` is 0. For streams the sum is the time to the first
    chunk, and `chunk_delay_ms` separates the chunks after it.
    """

    fixed_ms: float = 0.0
    jitter_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    chunk_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"latency {field.name} must be >= 0")
        if self.p50_ms and self.p95_ms < self.p50_ms:
            raise ValueError("latency p95_ms must be >= p50_ms when p50_ms is set")


@dataclasses.dataclass(frozen=True)
class Faults:
    """Random failures, each rate a probability per inference request (0..1).

    A "timeout" holds the request for `timeout_s` (or until the client hangs up) and then answers
    normally, the way a stuck upstream looks to a gateway.
    """

    fail_rate_429: float = 0.0
    fail_rate_500: float = 0.0
    timeout_rate: float = 0.0
    retry_after_s: float = 1.0
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("fail_rate_429", "fail_rate_500", "timeout_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"faults {name} must be between 0 and 1")
        if self.fail_rate_429 + self.fail_rate_500 + self.timeout_rate > 1.0:
            raise ValueError("faults rates must add up to at most 1")
        if self.retry_after_s < 0 or self.timeout_s < 0:
            raise ValueError("faults retry_after_s and timeout_s must be >= 0")


@dataclasses.dataclass(frozen=True)
class MockConfig:
    """Everything the server needs; the defaults give a fast, faultless, keyless backend."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port (what tests want); the command line defaults to 9001."""
    api_key: str | None = None
    latency: Latency = dataclasses.field(default_factory=Latency)
    faults: Faults = dataclasses.field(default_factory=Faults)
    embedding_dim: int = 256
    max_reply_tokens: int = 256
    models: tuple[str, ...] = DEFAULT_MODELS
    seed: int | None = None
    """Seeds latency and fault draws, so a run can be replayed; None draws a fresh seed."""
    prompt_cache: bool = False
    """Report the prefix an earlier prompt shared as cached tokens, as OpenAI's cache does."""
    reasoning_tokens: int = 0
    """Hidden reasoning tokens each choice adds to completion_tokens, as a reasoning model's do."""

    def __post_init__(self) -> None:
        if self.embedding_dim < 1:
            raise ValueError("embedding_dim must be >= 1")
        if self.max_reply_tokens < 1:
            raise ValueError("max_reply_tokens must be >= 1")
        if self.reasoning_tokens < 0:
            raise ValueError("reasoning_tokens must be >= 0")
