"""The Argo CD health checks of examples/argocd/, run in gopher-lua (the Lua 5.1 interpreter Argo
CD embeds, built from the Go module proxy) against every sample in their health_test.yaml, as
Argo CD's own test harness runs its built-in checks. The samples' statuses come from the
operator's status functions (tiers.devenv.argocd), so a change to what the operator writes that
the checks misread fails here."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest
import yaml

from tiers.api import kinds
from tiers.devenv import argocd, argocd_samples, toolchain

ROOT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "argocd"
HEALTH = ("Healthy", "Progressing", "Degraded", "Suspended")


def lua_literal(value: Any) -> str:
    """A Lua table constructor of a JSON value, as Argo CD hands the object to the script."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() or c in " .,:;-_/()'" else f"\\{b:03d}"
                             for c in value for b in c.encode()) + '"'  # fmt: skip
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    items = (f"[{lua_literal(str(key))}] = {lua_literal(item)}" for key, item in value.items())
    return "{" + ", ".join(items) + "}"


def run_check(script: pathlib.Path, objects: list[Any], tmp_path: pathlib.Path) -> list[Any]:
    """(status, message) of each object, by the script, in Argo CD's sandbox: no io, os, string
    or math library (the driver keeps a writer for itself before it takes them away)."""
    calls = "\n".join(
        f"obj = {lua_literal(obj)}\nlocal hs = check()\n"
        'write(tostring(hs.status), "\\t", tostring(hs.message), "\\n")'
        for obj in objects
    )
    driver = tmp_path / "driver.lua"
    driver.write_text(
        f"local check = assert(loadfile({lua_literal(str(script))}))\n"
        "local write = io.write\n"
        "io, os, string, math, debug = nil, nil, nil, nil, nil\n" + calls + "\n"
    )
    glua = toolchain.ensure_built(toolchain.GOPHER_LUA) / "glua"
    result = subprocess.run(
        [str(glua), str(driver)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [line.split("\t", 1) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda kind: kind.kind)
def test_the_health_check_gives_every_sample_its_expected_health(
    kind: kinds.Kind, tmp_path: pathlib.Path
) -> None:
    folder = argocd.health_check(ROOT, kind).parent
    tests = yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
    objects = [yaml.safe_load((folder / test["inputPath"]).read_text()) for test in tests]
    got = run_check(argocd.health_check(ROOT, kind), objects, tmp_path)
    expected = [[t["healthStatus"]["status"], t["healthStatus"]["message"]] for t in tests]
    assert dict(zip([t["inputPath"] for t in tests], got, strict=True)) == dict(
        zip([t["inputPath"] for t in tests], expected, strict=True)
    )


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda kind: kind.kind)
def test_every_kind_has_samples_of_every_health(kind: kinds.Kind) -> None:
    assert {sample.health for sample in argocd_samples.SAMPLES[kind]()} == set(HEALTH)


def test_a_batch_job_succeeded_is_healthy_failed_degraded_and_suspended_suspended() -> None:
    health = {sample.name: sample.health for sample in argocd_samples.batch_samples()}
    assert health["healthy_succeeded"] == "Healthy"
    assert health["degraded_failed"] == "Degraded"
    assert health["suspended"] == "Suspended"


def test_the_long_running_kinds_share_one_health_check() -> None:
    endpoint = argocd.health_check(ROOT, kinds.REALTIME_ENDPOINT).read_text()
    assert argocd.health_check(ROOT, kinds.STREAM_PIPELINE).read_text() == endpoint


def test_the_generated_samples_and_argocd_cm_are_up_to_date() -> None:
    for path, text in argocd.render(ROOT).items():
        assert path.read_text() == text, f"{path} drifted: run `make argocd`"


def test_argocd_cm_installs_each_kinds_check_under_argo_cds_key() -> None:
    config_map = yaml.safe_load((ROOT / "argocd-cm.yaml").read_text())
    assert config_map["metadata"]["name"] == "argocd-cm"
    assert config_map["data"] == {
        f"resource.customizations.health.tiers.dev_{kind.kind}": argocd.health_check(
            ROOT, kind
        ).read_text()
        for kind in kinds.ALL
    }


def test_the_applications_sync_the_chart_and_every_numbered_example() -> None:
    repo = ROOT.parents[1]
    chart = yaml.safe_load((ROOT / "tiers-operator.yaml").read_text())["spec"]["source"]
    assert (repo / chart["path"] / "Chart.yaml").exists()
    source = yaml.safe_load((ROOT / "tiers-examples.yaml").read_text())["spec"]["source"]
    numbered = sorted(path.name for path in (repo / source["path"]).glob("[0-9][0-9]-*"))
    assert source["directory"]["include"] == "{" + ",".join(f"{n}/*.yaml" for n in numbered) + "}"
