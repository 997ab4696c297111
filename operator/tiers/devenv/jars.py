"""Fetches jar sets from Maven Central into the cache: the Kafka broker, and Spark's connectors
for Kafka and for Delta Lake.

Each set is a wrapper pom, `tools/<name>/pom.xml`, that lists its artifacts; a property in it pins
the set's version, so the pom is the single place to bump it. `mvn dependency:copy-dependencies`
resolves the set into `~/.cache/tiers/jars/<name>-<version>/`, marked by `.complete`, and fetches
it again only when that pom changes. `cluster.build()` (so `tiers dev build` and `make build`)
fetches every set, `tiers.devenv.kafka` runs the broker from its set, and Spark sessions in dev and
tests pass `connector_jars()` as `spark.jars`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

from tiers.devenv import paths, progress

_POM_NS = "{http://maven.apache.org/POM/4.0.0}"
_DONE_MARKER = ".complete"


@dataclasses.dataclass(frozen=True)
class JarSet:
    """The runtime dependencies of one wrapper pom under `tools/`."""

    name: str
    """The folder under `tools/`, and the cache folder's prefix."""
    version_property: str
    """The pom property that pins the set's version."""
    title: str

    @property
    def pom(self) -> pathlib.Path:
        return paths.repo_root() / "tools" / self.name / "pom.xml"

    @property
    def version(self) -> str:
        return pinned_version(self.pom, self.version_property)

    @property
    def out_dir(self) -> pathlib.Path:
        return paths.cache_dir() / "jars" / f"{self.name}-{self.version}"

    @property
    def classpath(self) -> str:
        """The folder as a `java -cp` wildcard."""
        return str(self.out_dir / "*")

    def jars(self) -> list[pathlib.Path]:
        return sorted(self.out_dir.glob("*.jar"))


KAFKA = JarSet(name="kafka", version_property="kafka.version", title="the Kafka broker")
SPARK_KAFKA = JarSet(
    name="spark-kafka", version_property="spark.version", title="Spark's Kafka connector"
)
SPARK_DELTA = JarSet(
    name="spark-delta", version_property="spark.version", title="Delta Lake's Spark connector"
)
SPARK_SETS: tuple[JarSet, ...] = (SPARK_KAFKA, SPARK_DELTA)
"""What a SparkSession adds to pyspark's own jars: both pinned to the installed pyspark."""
ALL: tuple[JarSet, ...] = (KAFKA, *SPARK_SETS)


def pinned_version(pom: pathlib.Path, prop: str) -> str:
    """The value of `<properties><prop>` in a pom."""
    root = ElementTree.parse(pom).getroot()
    element = root.find(f"{_POM_NS}properties/{_POM_NS}{prop}")
    if element is None:
        element = root.find(f"properties/{prop}")  # a pom without the Maven namespace
    if element is None or not (element.text or "").strip():
        raise ValueError(f"{pom} has no <properties><{prop}>")
    return (element.text or "").strip()


def is_fetched(jar_set: JarSet) -> bool:
    marker = jar_set.out_dir / _DONE_MARKER
    return marker.exists() and marker.read_text() == _marker_text(jar_set)


def ensure_fetched(jar_set: JarSet) -> pathlib.Path:
    """Fetches the set unless this version is in the cache already; returns its folder."""
    if is_fetched(jar_set):
        return jar_set.out_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(
            "mvn is not on PATH: install Maven 3 and Java 17 to fetch the Kafka jars"
            " (Debian: maven, openjdk-17-jdk-headless)"
        )
    out_dir = jar_set.out_dir
    staging = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [mvn, "-B", "-f", str(jar_set.pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]  # fmt: skip
    try:
        with progress.step(f"fetching jars of {jar_set.title} {jar_set.version}") as step:
            _run_maven(command, step)
        if not any(staging.glob("*.jar")):
            raise RuntimeError(f"{' '.join(command)} copied no jar")
        (staging / _DONE_MARKER).write_text(_marker_text(jar_set))
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def connector_jars(jar_set: JarSet = SPARK_KAFKA) -> list[pathlib.Path]:
    """The jars a SparkSession needs for `format("kafka")` (or `format("delta")` with
    `SPARK_DELTA`), as `spark.jars`; fetched if missing.

    They must match the installed pyspark exactly: a mismatch fails here, not deep inside Spark.
    """
    wanted = jar_set.version
    installed = installed_pyspark()
    if installed is not None and installed != wanted:
        raise RuntimeError(
            f"pyspark {installed} is installed but tools/{jar_set.name}/pom.xml pins the "
            f"connector for Spark {wanted}: install pyspark=={wanted} (pyproject.toml) or change "
            "the pom"
        )
    ensure_fetched(jar_set)
    return jar_set.jars()


def installed_pyspark() -> str | None:
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        return None


def downloaded_artifact(line: str) -> str | None:
    """The file name in one of Maven's `Downloaded from <repo>: <url> (...)` lines."""
    marker = "Downloaded from "
    start = line.find(marker)
    if start < 0:
        return None
    words = line[start + len(marker) :].split()
    return words[1].rsplit("/", 1)[-1] if len(words) > 1 else None


def _marker_text(jar_set: JarSet) -> str:
    digest = hashlib.sha256(jar_set.pom.read_bytes()).hexdigest()
    return f"{jar_set.version}\npom sha256 {digest}\n"


def _run_maven(command: list[str], step: progress.Step) -> None:
    """Runs Maven in batch mode, counting the files it downloads as they are printed."""
    tail: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = [*tail[-60:], line]
            artifact = downloaded_artifact(line)
            if artifact is not None:
                step.advance(detail=artifact[-60:])
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n" + "\n".join(tail))
