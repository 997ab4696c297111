"""Deterministic embedding vectors that keep similar texts similar: hashed bags of words.

Each lower-cased word adds ±1 at a few positions picked by a hash of the word, and the sum is
normalised to a unit vector. The same text always gives the same vector; texts that share most of
their words ("What is the capital of France?", "what is the capital of france") get a cosine near
1, and texts without common words a cosine near 0. That is what a semantic cache needs from a real
embedding model to be tested against this mock: a random vector per text would make every
rephrasing look unrelated.
"""

import array
import base64
import functools
import hashlib
import math
import re
import sys

WORD = re.compile(r"\w+")
POSITIONS_PER_WORD = 4
"""Several positions per word, so two words that share one position still differ elsewhere."""


@functools.lru_cache(maxsize=4096)
def vector(text: str, dimensions: int) -> tuple[float, ...]:
    values = [0.0] * dimensions
    # A text without words ("", "?!") still gets a vector of its own.
    for word in WORD.findall(text.lower()) or [text]:
        digest = hashlib.blake2b(word.encode(), digest_size=4 * POSITIONS_PER_WORD).digest()
        for i in range(POSITIONS_PER_WORD):
            draw = int.from_bytes(digest[4 * i : 4 * i + 4], "little")
            values[(draw >> 1) % dimensions] += 1.0 if draw & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:  # the ±1s of a word cancelled out in a tiny vector
        values[0], norm = 1.0, 1.0
    return tuple(v / norm for v in values)


def encode(values: tuple[float, ...], encoding_format: str) -> list[float] | str:
    """`float` gives the numbers; `base64` gives little-endian float32 bytes, as OpenAI sends."""
    if encoding_format != "base64":
        return list(values)
    packed = array.array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
