"""Generates the CustomResourceDefinitions in `crds/` and in the Helm chart from the models.

`python -m tiers.api.crdgen crds/ --chart charts/tiers` writes one file per kind into each;
`make verify` runs it and fails on drift. The chart's copies are the same objects wrapped in
`crds.enabled` and annotated `helm.sh/resource-policy: keep` while `crds.keep` holds.
The conversion is pure: pydantic's JSON Schema in, a structural OpenAPI v3 schema out
(references inlined, `Optional` as `nullable`, titles and `additionalProperties: false` dropped).
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
import yaml

from tiers.api import kinds

JSON = dict[str, Any]

# Keys of JSON Schema that a structural CRD schema keeps as they are.
_KEPT = {
    "type",
    "format",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


def openapi_schema(model: type[pydantic.BaseModel]) -> JSON:
    """The structural OpenAPI v3 schema of a model, as a CRD's `openAPIV3Schema` expects it."""
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    definitions: Mapping[str, JSON] = schema.pop("$defs", {})
    return _structural(schema, definitions)


def _structural(node: JSON, definitions: Mapping[str, JSON]) -> JSON:
    node = _inline(node, definitions)
    node = _nullable(node, definitions)
    out: JSON = {key: node[key] for key in ("type", "description") if key in node}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _structural(sub, definitions) for name, sub in value.items()}
        elif key == "items":
            out[key] = _structural(value, definitions)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _structural(value, definitions)
        elif key == "const":
            out["enum"] = [value]
        elif key == "maxLength" and node.get("type") == "object":
            out["maxProperties"] = value
        elif key == "maxLength" and node.get("type") == "array":
            out["maxItems"] = value
        elif key == "minLength" and node.get("type") == "array":
            out["minItems"] = value
        elif key == "default" and (value is None or value in ({}, [])):
            continue
        elif key in _KEPT and key not in out:
            out[key] = value
    return out


def _inline(node: JSON, definitions: Mapping[str, JSON]) -> JSON:
    """Replaces a `$ref` by its definition; keys beside the `$ref` win (descriptions, rules)."""
    if "$ref" not in node:
        return node
    target = definitions[node["$ref"].rsplit("/", 1)[-1]]
    merged = {**_inline(target, definitions), **{k: v for k, v in node.items() if k != "$ref"}}
    rules = target.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _nullable(node: JSON, definitions: Mapping[str, JSON]) -> JSON:
    """`X | None` comes as anyOf[X, null]; a CRD says the same with `nullable: true` on X."""
    variants = node.get("anyOf")
    if variants is None:
        return node
    present = [v for v in variants if v.get("type") != "null"]
    if len(present) != 1 or len(present) == len(variants):
        raise ValueError(f"only Optional unions map to a structural schema, got {variants}")
    inner = _inline(present[0], definitions)
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    rules = inner.get("x-kubernetes-validations", []) + rest.get("x-kubernetes-validations", [])
    merged = {**inner, **rest, "nullable": True}
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def render_crd(kind: kinds.Kind) -> JSON:
    """The whole CustomResourceDefinition of one kind."""
    schema = {
        "type": "object",
        "description": f"{kind.kind} of the Tiers AI inference operator.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(kind.spec),
            "status": openapi_schema(kind.status),
        },
    }
    columns = [
        {
            "name": column.name,
            "type": column.type,
            "jsonPath": column.json_path,
            **({"priority": column.priority} if column.priority else {}),
        }
        for column in kind.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "tiers"}},
        "spec": {
            "group": kinds.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": [kind.short_name],
                "categories": [kinds.CATEGORY],
            },
            "versions": [
                {
                    "name": kinds.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes shared sub-schemas out in full: CRD readers should not meet YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


HEADER = "# GENERATED by `python -m tiers.api.crdgen` from tiers.api; do not edit by hand.\n"


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)


def render_file(kind: kinds.Kind) -> str:
    return HEADER + _dump(render_crd(kind))


def render_chart_file(kind: kinds.Kind) -> str:
    """The chart's template of one CRD: the object of `render_file`, under the chart's switches."""
    crd = render_crd(kind)
    metadata = crd.pop("metadata")
    spec = crd.pop("spec")
    labels = "".join(f"    {line}\n" for line in _dump(metadata["labels"]).splitlines())
    return (
        # The header inside the condition: with CRDs off, the file renders to nothing at all.
        "{{- if .Values.crds.enabled }}\n"
        + HEADER
        + _dump(crd)
        + "metadata:\n"
        + f"  name: {metadata['name']}\n"
        + "  labels:\n"
        + labels
        + '    {{- include "tiers.labels" . | nindent 4 }}\n'
        + "  {{- if .Values.crds.keep }}\n"
        + "  annotations:\n"
        # Deleting a CRD deletes every object of its kind: uninstalling must not do that.
        + "    helm.sh/resource-policy: keep\n"
        + "  {{- end }}\n"
        + _escape_template(_dump({"spec": spec}))
        + "{{- end }}\n"
    )


def _escape_template(text: str) -> str:
    """Text Helm leaves as it is: a `{{` in a description or a rule stays literal."""
    return text.replace("{{", '{{ "{{" }}')


def file_name(kind: kinds.Kind) -> str:
    return f"{kind.singular}.yaml"


CHART_CRD_DIR = pathlib.Path("templates", "crds")


def write_all(
    directory: pathlib.Path, render: Callable[[kinds.Kind], str] = render_file
) -> list[pathlib.Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds.ALL:
        path = directory / file_name(kind)
        path.write_text(render(kind))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=pathlib.Path, nargs="?", default=pathlib.Path("crds"))
    parser.add_argument(
        "--chart",
        type=pathlib.Path,
        help=f"also write the CRD templates of this chart's {CHART_CRD_DIR}/",
    )
    args = parser.parse_args(argv)
    written = write_all(args.directory)
    if args.chart is not None:
        written += write_all(args.chart / CHART_CRD_DIR, render_chart_file)
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
