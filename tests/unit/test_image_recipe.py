"""One recipe for the image, whoever builds it: Docker runs the Dockerfile, `make image` runs the
same Dockerfile with buildah; what decides a rebuild is what the Docker build context admits."""

from __future__ import annotations

import pathlib

from tiers.devenv import image

ROOT = pathlib.Path(__file__).resolve().parents[2]


def stages(dockerfile: str) -> list[list[str]]:
    """The Dockerfile's stages, each as its instructions (continuation lines joined)."""
    joined = dockerfile.replace("\\\n", " ")
    found: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            found.append([])
        if found and line and not line.startswith("#"):
            found[-1].append(line)
    return found


def test_the_cache_key_covers_what_the_build_context_admits() -> None:
    admitted = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert admitted == set(image.IMAGE_SOURCES) - {"Dockerfile", ".dockerignore"}


def test_the_images_only_stage_runs_populate_sh_and_nothing_else() -> None:
    final = stages((ROOT / "Dockerfile").read_text())[-1]
    runs = [line for line in final if line.startswith("RUN ")]
    assert len(runs) == 1 and runs[0].endswith("sh /recipe/populate.sh /inputs")
    copies = [line for line in final if line.startswith("COPY ")]
    assert copies == ["COPY --from=frontend /frontend/dist /opt/tiers/frontend"]
    assert final[0] == "FROM ${BASE}"


def test_the_inputs_stage_is_fetch_sh_as_make_image_runs_it_on_the_host() -> None:
    inputs = next(
        stage
        for stage in stages((ROOT / "Dockerfile").read_text())
        if stage[0].endswith(" AS inputs")
    )
    assert inputs[0] == "FROM ${BASE} AS inputs"
    assert inputs[-1].endswith("sh /src/tools/image/fetch.sh all /src /inputs")


def test_the_base_is_made_of_the_package_list_populate_sh_checks() -> None:
    packages = image.runtime_packages()
    assert {"python3", "openjdk-17-jre-headless", "ca-certificates"} <= set(packages)
    assert "packages-runtime.txt" in (ROOT / "tools/image/populate.sh").read_text()
