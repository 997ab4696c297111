"""Which images spec.spark.image may run: the operator's own, and the admin's allowed list."""

from __future__ import annotations

import pytest

from tiers.operator import images

OPERATOR_IMAGE = "registry.example/tiers:0.1.0"


def refusal(image: str | None, *patterns: str) -> str | None:
    verdict = images.refusal(image, operator_image=OPERATOR_IMAGE, patterns=patterns)
    return None if verdict is None else verdict.message


def test_no_image_runs_the_operators_own() -> None:
    assert refusal(None) is None
    assert refusal(OPERATOR_IMAGE) is None


def test_any_other_image_is_refused_while_the_allowed_list_is_empty() -> None:
    message = refusal("attacker.example/miner:latest")
    assert message is not None
    assert "spec.spark.image attacker.example/miner:latest" in message
    assert "spark.allowedImages" in message


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.example/spark/tiers-spark:4.2", True),
        ("registry.example/spark/x@sha256:abc", True),
        ("registry.example/sparkling/x:1", False),
        ("registry.example/other:1", False),
        ("spark:4.2", True),
        ("spark:4.2-evil", False),
    ],
)
def test_an_image_runs_only_when_an_exact_name_or_a_prefix_allows_it(
    image: str, allowed: bool
) -> None:
    assert (refusal(image, "registry.example/spark/*", "spark:4.2") is None) is allowed


def test_a_star_inside_a_pattern_is_not_a_wildcard() -> None:
    assert refusal("registry.example/a/b:1", "registry.example/*/b:1") is not None


def test_the_allowed_list_is_read_from_comma_or_space_separated_env() -> None:
    environ = {images.ALLOWED_ENV: "a/*, b:1  c:2"}
    assert images.allowed_patterns(environ) == ("a/*", "b:1", "c:2")
    assert images.allowed_patterns({}) == ()


def test_a_refusal_is_a_false_condition_with_its_own_reason() -> None:
    verdict = images.refusal("x:1", operator_image=OPERATOR_IMAGE, patterns=())
    assert verdict is not None
    assert (verdict.status, verdict.reason) == ("False", "ImageNotAllowed")
