"""Draws how long each reply waits, from the configured `config.Latency` distribution."""

import math
import random

from tiers.runtime.mockllm import config

# z-score of the 95th percentile of a standard normal: sigma = ln(p95 / p50) / z95.
_Z95 = 1.6448536269514722


class LatencySampler:
    def __init__(self, latency: config.Latency, *, rng: random.Random) -> None:
        self._rng = rng
        self._fixed_s = latency.fixed_ms / 1000
        self._jitter_s = latency.jitter_ms / 1000
        self._lognormal = latency.p50_ms > 0
        self._mu = math.log(latency.p50_ms / 1000) if self._lognormal else 0.0
        self._sigma = math.log(latency.p95_ms / latency.p50_ms) / _Z95 if self._lognormal else 0.0
        self.chunk_delay_s = latency.chunk_delay_ms / 1000

    def first_byte_s(self) -> float:
        """Seconds before the reply (or a stream's first chunk); 0.0 when latency is off."""
        seconds = self._fixed_s
        if self._jitter_s:
            seconds += self._rng.uniform(0.0, self._jitter_s)
        if self._lognormal:
            seconds += self._rng.lognormvariate(self._mu, self._sigma)
        return seconds
