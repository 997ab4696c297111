"""`make image`: the Dockerfile built without Docker, into podman's store as `tiers:<version>`.

No Docker engine or image registry is reachable here (DESIGN.md, "Containers"), so the image is
built from Debian's packages and the same recipe the Dockerfile runs:

1. base: `mmdebstrap` makes a Debian root filesystem of `tools/image/packages-runtime.txt`,
   imported into podman as `localhost/tiers-base:<key>` (the Dockerfile's `BASE`);
2. inputs: `tools/image/fetch.sh` (the Dockerfile's `inputs` stage) fetches the wheels with the
   base's Python in a container, and the connector's jars with Maven on the host;
3. image: `buildah bud` runs the Dockerfile on that base, given the inputs as the `inputs` stage
   and the checkout (its frontend/dist, `make frontend`) as the `frontend` stage, so the image's
   own stage is `tools/image/populate.sh` and the same files, as with Docker.

Each step is cached under `~/.cache/tiers/image/` (and podman's store) by a digest of what it is
made of: the base by its package list, the image by every file that goes into it. Nothing is
rebuilt when none of them changed. The integration tests call `ensure_built()`; podman and
buildah run with `tools/image/containers.conf` (`podman_env()`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterable

from tiers.devenv import paths, progress

SUITE = "bookworm"
"""Debian's release: Python 3.11 and OpenJDK 17; the Dockerfile's `BASE` is of the same."""
NAME = "localhost/tiers"
BASE_NAME = "localhost/tiers-base"
KEY_LABEL = "dev.tiers.inputs"
"""The label of a built image that holds the digest of its inputs."""
IMAGE_SOURCES = (
    "Dockerfile", ".dockerignore", "pyproject.toml", "README.md",
    "operator", "runtime", "frontend", "tools/spark-kafka", "tools/spark-delta", "tools/image",
)  # fmt: skip
"""What goes into the image, as .dockerignore admits it: a change to any of it rebuilds."""
TOOLS = ("podman", "buildah", "mmdebstrap")


def recipe_dir() -> pathlib.Path:
    return paths.repo_root() / "tools" / "image"


def cache_dir() -> pathlib.Path:
    return paths.cache_dir() / "image"


def reference(version: str | None = None) -> str:
    """The image's name in podman's store: `localhost/tiers:<version of the tiers package>`."""
    return f"{NAME}:{version or importlib.metadata.version('tiers')}"


def podman_env() -> dict[str, str]:
    """The environment podman and buildah need on these machines (tools/image/containers.conf)."""
    return {**os.environ, "CONTAINERS_CONF": str(recipe_dir() / "containers.conf")}


def runtime_packages() -> list[str]:
    lines = (recipe_dir() / "packages-runtime.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def base_key() -> str:
    recipe = recipe_dir()
    return _digest([SUITE.encode(), *(f.read_bytes() for f in _base_files(recipe))])


def inputs_key(root: pathlib.Path | None = None) -> str:
    """A digest of every file that goes into the image (and of the base), in `git ls-files`
    order; `make image` rebuilds when it changes."""
    root = root or paths.repo_root()
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
         *IMAGE_SOURCES],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    files = sorted({name for name in listed.split("\0") if name and (root / name).is_file()})
    parts = [base_key().encode()]
    for name in files:
        parts += [name.encode(), (root / name).read_bytes()]
    return _digest(parts)


def is_built(key: str | None = None) -> bool:
    """Whether podman holds `tiers:<version>` built from these very inputs."""
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{KEY_LABEL}"}}}}',
         reference()],
        env=podman_env(), capture_output=True, text=True,
    )  # fmt: skip
    return found.returncode == 0 and found.stdout.strip() == (key or inputs_key())


def ensure_built() -> str:
    """Builds the image unless it is built from these inputs already; returns its reference."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not on PATH: run `bash tools/install-system-deps.sh` "
            "(Debian: podman buildah runc mmdebstrap)"
        )
    key = inputs_key()
    if is_built(key):
        print(f"  ✓ {reference()} is built from these sources (cached)", file=sys.stderr)
        return reference()
    root = paths.repo_root()
    if not (root / "frontend" / "dist" / "index.html").exists():
        with progress.step("building the console's frontend (make frontend)") as step:
            _run(["make", "-C", str(root), "frontend"], step, env=dict(os.environ))
        key = inputs_key()
    base = ensure_base()
    context = cache_dir() / "inputs"
    shutil.rmtree(context, ignore_errors=True)
    fetch_inputs(base, context / "inputs")
    with progress.step(f"building {reference()} (buildah, the Dockerfile)") as step:
        _run(
            ["buildah", "bud", "--isolation", "chroot", "--network", "host", "--layers=false",
             "--build-arg", f"BASE={base}", "--build-context", f"inputs={context}",
             "--build-context", f"frontend={root}",
             "--label", f"{KEY_LABEL}={key}", "--tag", reference(),
             "--file", str(paths.repo_root() / "Dockerfile"), str(paths.repo_root())],
            step, env=podman_env(),
        )  # fmt: skip
    shutil.rmtree(context, ignore_errors=True)
    return reference()


def fetch_inputs(base: str, out: pathlib.Path) -> None:
    """tools/image/fetch.sh, as the Dockerfile's `inputs` stage runs it: the wheels resolved by
    the base's own Python (in a container of it, with this interpreter's pip, the host's network
    and its certificate authorities: environment markers such as `python_full_version` are the
    base's), the jars and the build info on the host."""
    root = paths.repo_root()
    fetch = str(recipe_dir() / "fetch.sh")
    pip_dir = pathlib.Path(pip_module_dir())
    pip_cache = cache_dir() / "pip"
    out.mkdir(parents=True)
    pip_cache.mkdir(parents=True, exist_ok=True)
    volumes = [f"{root}:/src:ro", f"{pip_dir}:/opt/host-pip/pip:ro", f"{out}:/out",
               f"{pip_cache}:/root/.cache/pip"]  # fmt: skip
    settings = ["PYTHONPATH=/opt/host-pip", "PYTHONDONTWRITEBYTECODE=1"]
    authorities = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if authorities and pathlib.Path(authorities).is_file():
        volumes.append(f"{authorities}:/etc/ssl/host-authorities.crt:ro")
        settings += ["PIP_CERT=/etc/ssl/host-authorities.crt",
                     "SSL_CERT_FILE=/etc/ssl/host-authorities.crt"]  # fmt: skip
    with progress.step("fetching the wheels (the base's Python, pip)") as step:
        _run(
            ["podman", "run", "--rm", "--network=host",
             *(f"--volume={volume}" for volume in volumes),
             *(f"--env={setting}" for setting in settings),
             base, "sh", "/src/tools/image/fetch.sh", "wheels", "/src", "/out"],
            step, env=podman_env(),
        )  # fmt: skip
    with progress.step("fetching the jars (Maven) and the build info") as step:
        for part in ("jars", "info"):
            _run(["sh", fetch, part, str(root), str(out)], step, env=dict(os.environ))


def pip_module_dir() -> str:
    """The folder of this interpreter's pip package (pure Python: the base's Python runs it)."""
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{sys.executable} has no pip: `make install` gives the venv one")
    return str(spec.submodule_search_locations[0])


def ensure_base() -> str:
    """`localhost/tiers-base:<key>` in podman's store: mmdebstrap's root filesystem, cached as a
    tarball so a fresh store imports it instead of building it again."""
    key = base_key()
    name = f"{BASE_NAME}:{key}"
    env = podman_env()
    exists = subprocess.run(["podman", "image", "exists", name], env=env)
    if exists.returncode == 0:
        return name
    tarball = cache_dir() / f"base-{key}.tar"
    if not tarball.exists():
        recipe = recipe_dir()
        partial = tarball.with_name(f"{tarball.stem}.partial-{os.getpid()}.tar")
        partial.parent.mkdir(parents=True, exist_ok=True)
        debs = cache_dir() / "debs"  # downloaded packages, kept for the next base
        debs.mkdir(parents=True, exist_ok=True)
        try:
            with progress.step(f"making a Debian {SUITE} root filesystem (mmdebstrap)") as step:
                _run(
                    ["mmdebstrap", "--variant=minbase", "--format=tar",
                     f"--include={','.join(runtime_packages())}",
                     f"--dpkgopt={recipe / 'dpkg-excludes'}", "--dpkgopt=force-unsafe-io",
                     "--essential-hook=mkdir -p \"$1/usr/share/man/man1\"",
                     "--skip=download/empty",
                     "--setup-hook=mkdir -p \"$1/var/cache/apt/archives\"",
                     f"--setup-hook=sync-in {debs} /var/cache/apt/archives",
                     f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
                     SUITE, str(partial)],
                    step, env=dict(os.environ),
                )  # fmt: skip
            partial.rename(tarball)
        finally:
            partial.unlink(missing_ok=True)
    with progress.step(f"importing the root filesystem as {name}") as step:
        _run(["podman", "import", str(tarball), name], step, env=env)
    return name


def info(reference_: str | None = None) -> dict[str, object]:
    """What `podman image inspect` says of the image: its size in bytes and its labels."""
    found = subprocess.run(
        ["podman", "image", "inspect", reference_ or reference()],
        env=podman_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    image = json.loads(found.stdout)[0]
    return {"size": image["Size"], "labels": image.get("Labels") or {}}


def _base_files(recipe: pathlib.Path) -> list[pathlib.Path]:
    return [recipe / "packages-runtime.txt", recipe / "dpkg-excludes"]


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _run(command: list[str], step: progress.Step, *, env: dict[str, str]) -> None:
    """Runs a build command, its latest output line as the step's detail; the tail of its output
    in the error when it fails."""
    tail: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = [*tail[-60:], line]
            if line:
                step.note(line[-70:])
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed:\n" + "\n".join(tail))


def main() -> int:
    built = ensure_built()
    size = info(built)["size"]
    assert isinstance(size, int)
    print(f"{built}: {size / 1e6:.0f} MB; try: podman run --rm {built} tiers version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
