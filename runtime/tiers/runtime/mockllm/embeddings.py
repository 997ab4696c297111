"""Deterministic embedding vectors: the same text always maps to the same unit vector.

Each vector is drawn from a Gaussian seeded by a hash of the text and normalised, so distinct texts
are nearly orthogonal and similarity tests behave as they would with a real model.
"""

import array
import base64
import functools
import hashlib
import math
import random
import sys


@functools.lru_cache(maxsize=4096)
def vector(text: str, dimensions: int) -> tuple[float, ...]:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "little"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


def encode(values: tuple[float, ...], encoding_format: str) -> list[float] | str:
    """`float` gives the numbers; `base64` gives little-endian float32 bytes, as OpenAI sends."""
    if encoding_format != "base64":
        return list(values)
    packed = array.array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
