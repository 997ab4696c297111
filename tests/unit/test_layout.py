"""The source tree keeps the shape DESIGN.md gives it."""

import importlib
import json
import pathlib
import subprocess
import sys
import tomllib

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


def test_the_operator_loads_none_of_the_data_plane_its_contract_forbids() -> None:
    """import-linter sees imports on paper; this is what importing every operator module loads.
    The `modelcall` package's names load the client lazily, so only running it can tell."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [forbidden] = [
        contract["forbidden_modules"]
        for contract in contracts["contracts"]
        if contract["name"].startswith("The operator reads the data plane's contracts only")
    ]
    every_module = (
        "import importlib, json, pkgutil, sys, tiers.operator\n"
        "for found in pkgutil.walk_packages(tiers.operator.__path__, 'tiers.operator.'):\n"
        "    if not found.name.endswith('__main__'):\n"
        "        importlib.import_module(found.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", every_module], capture_output=True, text=True, check=True
    )
    loaded = json.loads(ran.stdout)
    assert "tiers.runtime.modelcall.config" in loaded, (
        "the operator renders the model client's config"
    )
    assert [
        module
        for module in loaded
        if any(module == name or module.startswith(name + ".") for name in forbidden)
    ] == []
