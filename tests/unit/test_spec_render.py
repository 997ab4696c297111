"""What the operator checks of a spec before any side effect, beyond what the apiserver checks:
that the model client's config can be made from `spec.model` (objects stored before the CRD
checked prompts)."""

from __future__ import annotations

from tiers import api
from tiers.api import common
from tiers.operator import reconciliation
from tiers.operator.manifests import labels

OWNER = labels.Owner(api.API_VERSION, api.STREAM_PIPELINE.kind, "reviews", "shop", "uid-1")


def call(prompt: str) -> common.ModelCall:
    return common.ModelCall.model_validate({"endpointRef": {"name": "chat"}, "prompt": prompt})


def test_a_prompt_the_model_client_takes_is_renderable() -> None:
    assert reconciliation.unrenderable(OWNER, call("Summarize: {text}")) is None


def test_a_positional_placeholder_is_invalid_spec_naming_the_prompt() -> None:
    verdict = reconciliation.unrenderable(OWNER, call("Summarize: {0}"))
    assert verdict is not None
    assert (verdict.status, verdict.reason) == ("False", "InvalidSpec")
    assert verdict.message.startswith("spec.model.prompt: placeholder {0} is positional")


def test_unbalanced_braces_are_invalid_spec_naming_the_prompt() -> None:
    verdict = reconciliation.unrenderable(OWNER, call("Summarize: {text"))
    assert verdict is not None
    assert verdict.message.startswith("spec.model.prompt: ")
