"""The CRD generator: committed files match the models, and the schemas are structural."""

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tiers import api
from tiers.api import crdgen

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("kind", api.ALL, ids=lambda k: k.kind)
def test_committed_crd_matches_the_models(kind: api.Kind) -> None:
    committed = (CRDS / crdgen.file_name(kind)).read_text()
    assert committed == crdgen.render_file(kind), "run `make crds` and commit crds/"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def schema_of(kind: api.Kind) -> dict:
    return crdgen.render_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("kind", api.ALL, ids=lambda k: k.kind)
def test_schema_is_structural(kind: api.Kind) -> None:
    for path, node in walk(schema_of(kind)):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "properties" in node and not path.endswith(".properties"):
            assert node.get("type") == "object", f"{path} has properties but no type: object"


@pytest.mark.parametrize("kind", api.ALL, ids=lambda k: k.kind)
def test_spec_has_no_floats(kind: api.Kind) -> None:
    spec = schema_of(kind)["properties"]["spec"]
    floats = [path for path, node in walk(spec) if node.get("type") == "number"]
    assert floats == []


@pytest.mark.parametrize("kind", api.ALL, ids=lambda k: k.kind)
def test_map_lists_require_their_keys(kind: api.Kind) -> None:
    for path, node in walk(schema_of(kind)):
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), path


def test_optional_fields_become_nullable_and_keep_their_rules() -> None:
    spec = schema_of(api.REALTIME_ENDPOINT)["properties"]["spec"]
    autoscaling = spec["properties"]["autoscaling"]
    assert autoscaling["nullable"] is True
    assert autoscaling["type"] == "object"
    assert "maxReplicas" in autoscaling["x-kubernetes-validations"][0]["rule"]


def test_crd_names_short_names_and_category() -> None:
    names = {
        crd["spec"]["names"]["kind"]: crd["spec"]["names"]
        for crd in map(crdgen.render_crd, api.ALL)
    }
    assert {kind: n["shortNames"] for kind, n in names.items()} == {
        "RealtimeEndpoint": ["rte"],
        "StreamPipeline": ["spipe"],
        "BatchJob": ["bjob"],
    }
    assert all(n["categories"] == ["tiers"] for n in names.values())


def test_status_is_a_subresource_with_printer_columns() -> None:
    version = crdgen.render_crd(api.REALTIME_ENDPOINT)["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["P95"] == ".status.latency.p95Ms"
    assert columns["Cost/req"] == ".status.cost.perRequestUSD"


def test_generated_files_carry_the_do_not_edit_header() -> None:
    for path in CRDS.glob("*.yaml"):
        text = path.read_text()
        assert text.startswith(crdgen.HEADER)
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"
