"""What `tiers version` prints: the versions of what runs the operator and the data plane, as
found where it runs (in the image, or a source checkout).

In the image, `BUILD_INFO` (written by tools/image/populate.sh) holds the commit it was built
from; in a checkout, git says. Java and Spark are what the jobs would start: `java` on PATH, the
installed pyspark, and the Kafka connector's jars the stream job finds by itself.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import platform
import shutil
import subprocess
import sys

from tiers.runtime import sparkjars

BUILD_INFO = pathlib.Path("/opt/tiers/build-info.json")


def collect(build_info: pathlib.Path = BUILD_INFO) -> dict[str, str]:
    jars = sparkjars.find()
    return {
        "tiers": _distribution("tiers"),
        "commit": _commit(build_info),
        "python": f"{platform.python_version()} ({sys.executable})",
        "java": _java(),
        "spark": _distribution("pyspark"),
        "jars": ", ".join(pathlib.Path(jar).name for jar in jars) or "none found",
        "jars_dir": str(pathlib.Path(jars[0]).parent) if jars else "",
    }


def render(found: dict[str, str]) -> str:
    width = max(len(name) for name in found)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in found.items() if value)


def _distribution(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _java() -> str:
    """The first line of `java -version`, e.g. `openjdk version "17.0.13" 2024-10-15`."""
    java = shutil.which("java")
    if java is None:
        return "not found"
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    lines = (result.stderr or result.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def _commit(build_info: pathlib.Path) -> str:
    if build_info.is_file():
        return str(json.loads(build_info.read_text()).get("commit", "unknown"))
    source = pathlib.Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
