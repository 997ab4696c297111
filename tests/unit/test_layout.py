"""The source tree keeps the shape DESIGN.md gives it."""

import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        "operator/__init__.py",
        "runtime/__init__.py",
        "operator/tiers/__init__.py",
        "runtime/tiers/__init__.py",
    ],
)
def test_namespace_folders_have_no_init(path: str) -> None:
    assert not (ROOT / path).exists(), f"{path} would break the tiers namespace package"


def test_operator_does_not_shadow_the_standard_library() -> None:
    import operator

    assert hasattr(operator, "itemgetter"), "a top-level `operator` package shadows the stdlib"


@pytest.mark.parametrize("module", ["tiers.api", "tiers.operator", "tiers.runtime", "tiers.devenv"])
def test_public_surface_is_explicit(module: str) -> None:
    imported = importlib.import_module(module)
    assert isinstance(imported.__all__, list)
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ names {name}, which it lacks"


def test_the_two_portions_form_one_tiers_package() -> None:
    import tiers

    portions = {pathlib.Path(p).parent.name for p in tiers.__path__}
    assert portions == {"operator", "runtime"}
