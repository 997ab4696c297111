"""The Helm chart: generated files match their generators, and values.yaml keeps its promises."""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import yaml
from test_crdgen import walk

from tiers import api
from tiers.api import chartvalues, crdgen

CHART = pathlib.Path(__file__).resolve().parents[2] / "charts" / "tiers"
VALUES = CHART / "values.yaml"


def schema() -> dict[str, Any]:
    return chartvalues.render_schema()


@pytest.mark.parametrize("kind", api.ALL, ids=lambda k: k.kind)
def test_committed_chart_crd_matches_the_models(kind: api.Kind) -> None:
    committed = (CHART / crdgen.CHART_CRD_DIR / crdgen.file_name(kind)).read_text()
    assert committed == crdgen.render_chart_file(kind), "run `make crds` and commit charts/tiers/"
    assert crdgen.HEADER in committed


def test_chart_has_one_crd_template_per_kind_and_no_other() -> None:
    committed = {path.name for path in (CHART / crdgen.CHART_CRD_DIR).iterdir()}
    assert committed == {crdgen.file_name(kind) for kind in api.ALL}


def test_committed_values_schema_matches_the_model() -> None:
    committed = (CHART / "values.schema.json").read_text()
    assert committed == chartvalues.render_file(), "run `make crds` and commit charts/tiers/"
    assert json.loads(committed)["$comment"] == chartvalues.GENERATED


def test_values_schema_is_closed_except_kubernetes_affinity() -> None:
    open_objects = []
    for path, node in walk(schema()):
        if node.get("type") != "object":
            continue
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
        elif node.get("additionalProperties") is True:
            open_objects.append(path)
        else:
            # A map (labels, annotations, resource quantities): typed values, any key.
            assert isinstance(node.get("additionalProperties"), dict), path
    affinity = ".properties.affinity.properties"
    assert open_objects == [
        f"{affinity}.nodeAffinity",
        f"{affinity}.podAffinity",
        f"{affinity}.podAntiAffinity",
    ]


def test_values_yaml_holds_the_model_defaults() -> None:
    values = yaml.safe_load(VALUES.read_text())
    assert chartvalues.Values.model_validate(values) == chartvalues.Values()


def test_values_yaml_lists_every_key_of_the_model() -> None:
    def compare(values: Any, node: dict[str, Any], path: str) -> None:
        if not (isinstance(values, dict) and values and "properties" in node):
            return
        assert set(values) == set(node["properties"]), path or "top level"
        for key, value in values.items():
            compare(value, node["properties"][key], f"{path}.{key}")

    compare(yaml.safe_load(VALUES.read_text()), schema(), "")


def key_comments(
    mapping: yaml.MappingNode, node: dict[str, Any], lines: list[str], path: str = ""
) -> Iterator[tuple[str, str, str]]:
    """(path, comment block right above the key, schema description) for every key of the model."""
    for key, value in mapping.value:
        above = []
        for line in reversed(lines[: key.start_mark.line]):
            if not line.strip().startswith("#"):
                break
            above.insert(0, line.strip().removeprefix("#").strip())
        sub = node["properties"][key.value]
        yield f"{path}.{key.value}", " ".join(above), sub.get("description", "")
        if isinstance(value, yaml.MappingNode) and "properties" in sub:
            yield from key_comments(value, sub, lines, f"{path}.{key.value}")


def test_every_values_key_has_a_comment_that_says_what_the_schema_says() -> None:
    text = VALUES.read_text()
    root = yaml.compose(text)
    assert isinstance(root, yaml.MappingNode)
    found = list(key_comments(root, schema(), text.splitlines()))
    assert len(found) > 20
    for path, comment, description in found:
        assert comment, f"values.yaml: {path} has no comment above it"
        assert comment == " ".join(description.split()), f"values.yaml: {path}"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"replicaCount": 3}, "replicaCount"),
        ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy"),
        ({"crds": {"enabeld": False}}, "crds.enabeld"),
        ({"tolerations": [{"effect": "NoWhere"}]}, "tolerations.0.effect"),
    ],
)
def test_a_bad_value_is_rejected_naming_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=key.replace(".", r"\.")):
        chartvalues.Values.model_validate(values)


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == importlib.metadata.version("tiers")
    assert chart["kubeVersion"] == ">=1.30.0-0"
