"""The pydantic models accept the examples and refuse what the CRDs refuse."""

import pathlib

import pydantic
import pytest
import yaml

from tiers import api
from tiers.api import batch, realtime, stream

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
SPECS = {kind.kind: kind.spec for kind in api.ALL}


def example_objects() -> list[dict]:
    return [
        document
        for path in sorted(EXAMPLES.glob("[0-9][0-9]-*/*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


@pytest.mark.parametrize("obj", example_objects(), ids=lambda o: o["metadata"]["name"])
def test_every_example_parses_with_its_model(obj: dict) -> None:
    assert obj["apiVersion"] == api.API_VERSION
    SPECS[obj["kind"]].model_validate(obj["spec"])


def test_examples_cover_every_kind() -> None:
    assert {obj["kind"] for obj in example_objects()} == set(SPECS)


def minimal_backend(**overrides: object) -> dict:
    return {"name": "primary", "provider": "openai", "model": "gpt-4o-mini", **overrides}


def test_defaults_fill_in_what_the_user_left_out() -> None:
    spec = realtime.RealtimeEndpointSpec.model_validate(
        {"model": "gpt-4o-mini", "backends": [minimal_backend()]}
    )
    assert spec.replicas == 2
    assert spec.cache.enabled and spec.cache.ttl_seconds == 3600
    assert spec.retries.max_attempts == 3
    assert spec.backends[0].weight == 1


def test_wire_names_are_camel_case_with_acronyms_kept() -> None:
    backend = minimal_backend(provider="openai-compatible", baseURL="http://m:9001/v1")
    spec = realtime.RealtimeEndpointSpec.model_validate({"model": "m", "backends": [backend]})
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["backends"][0]["baseURL"] == "http://m:9001/v1"
    assert "ttlSeconds" in dumped["cache"]


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (realtime.RealtimeEndpointSpec, {"model": "m", "backends": []}),
        (
            realtime.RealtimeEndpointSpec,
            {"model": "m", "backends": [minimal_backend()], "replicas": 2.5},
        ),
        (
            realtime.RealtimeEndpointSpec,
            {"model": "m", "backends": [minimal_backend()], "cacheTTL": 5},
        ),
        (
            realtime.RealtimeEndpointSpec,
            {"model": "m", "backends": [minimal_backend()], "budget": {"monthlyUSD": "-5"}},
        ),
        (batch.Budget, {"maxUSD": "1e3"}),
        (stream.Topic, {"name": "bad topic!"}),
        (stream.Topic, {"name": "t", "partitions": -3}),
    ],
)
def test_invalid_values_are_refused(model: type[pydantic.BaseModel], data: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(data)


def test_money_is_never_a_float() -> None:
    with pytest.raises(pydantic.ValidationError):
        batch.Budget.model_validate({"maxUSD": 25.0})
