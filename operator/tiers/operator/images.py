"""Which images a StreamPipeline's or BatchJob's `spec.spark.image` may run. Pure; the handlers
of both kinds call `refusal()` right after reading the spec, before any side effect.

A Spark job runs with the namespace's workload identity and the model's API key, so the image it
runs is the cluster admin's choice, not any author of a custom resource's: the operator's own
image is always allowed, any other only when it matches the operator's allowed list (chart value
`spark.allowedImages`, environment variable `TIERS_SPARK_ALLOWED_IMAGES`). The list is empty by
default: no other image runs until an admin names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from tiers.operator import verdicts

ALLOWED_ENV = "TIERS_SPARK_ALLOWED_IMAGES"
REFUSED = "ImageNotAllowed"


def allowed_patterns(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The allowed list: comma- or whitespace-separated image references or prefixes."""
    return tuple(environ.get(ALLOWED_ENV, "").replace(",", " ").split())


def is_allowed(image: str, patterns: Sequence[str]) -> bool:
    """A pattern is an exact image reference, or a prefix ending in `*` (`registry/spark/*`).
    Prefixes, not shell globs: a `*` in the middle of a pattern matches only itself."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if image.startswith(pattern[:-1]):
                return True
        elif image == pattern:
            return True
    return False


def refusal(
    image: str | None, *, operator_image: str, patterns: Sequence[str]
) -> verdicts.Verdict | None:
    """None when the image may run (unset: the operator's image); else why not, naming the field
    and the allowed list."""
    if image is None or image == operator_image or is_allowed(image, patterns):
        return None
    allowed = ", ".join(patterns) if patterns else f"only the operator's image {operator_image}"
    return verdicts.Verdict(
        "False",
        REFUSED,
        f"spec.spark.image {image} is not in the operator's allowed images ({allowed}); "
        "ask the cluster admin to add it to the chart value spark.allowedImages",
    )
