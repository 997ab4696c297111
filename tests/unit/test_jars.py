"""The jar sets read their versions from the wrapper poms and are cached per version."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest

from tiers.devenv import jars, paths

POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <properties>
    <kafka.version> 4.9.9 </kafka.version>
  </properties>
</project>
"""


def test_the_version_is_a_property_of_the_pom(tmp_path: pathlib.Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(POM)
    assert jars.pinned_version(pom, "kafka.version") == "4.9.9"


def test_a_pom_without_the_maven_namespace_is_read_too(tmp_path: pathlib.Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(POM.replace(' xmlns="http://maven.apache.org/POM/4.0.0"', ""))
    assert jars.pinned_version(pom, "kafka.version") == "4.9.9"


def test_a_missing_property_is_an_error(tmp_path: pathlib.Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(POM)
    with pytest.raises(ValueError, match=r"no <properties><spark.version>"):
        jars.pinned_version(pom, "spark.version")


def test_the_committed_poms_pin_kafka_4_and_spark_4() -> None:
    assert re.fullmatch(r"4\.\d+\.\d+", jars.KAFKA.version)
    assert re.fullmatch(r"4\.\d+\.\d+", jars.SPARK_KAFKA.version)
    assert jars.KAFKA.pom == paths.repo_root() / "tools" / "kafka" / "pom.xml"


def test_the_connector_matches_the_pinned_pyspark() -> None:
    """Spark's Kafka connector must be built for exactly the pyspark that is installed."""
    project = tomllib.loads((paths.repo_root() / "pyproject.toml").read_text())["project"]
    pins = [dep for dep in project["dependencies"] if re.match(r"pyspark\b", dep)]
    assert pins == [f"pyspark=={jars.SPARK_KAFKA.version}"]


def test_delta_lake_is_the_build_for_the_pinned_spark() -> None:
    """delta-spark is built per Spark major.minor (`delta-spark_<major.minor>_2.13`)."""
    assert jars.SPARK_DELTA.version == jars.SPARK_KAFKA.version
    pom = jars.SPARK_DELTA.pom.read_text()
    builds = re.findall(r"<artifactId>delta-spark_([0-9.]+)_2\.13</artifactId>", pom)
    assert builds == [jars.SPARK_DELTA.version.rsplit(".", 1)[0]]
    assert re.fullmatch(r"4\.\d+\.\d+", jars.pinned_version(jars.SPARK_DELTA.pom, "delta.version"))


def test_jars_are_cached_per_set_and_version_outside_the_repo(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERS_CACHE", str(tmp_path))
    assert jars.KAFKA.out_dir == tmp_path / "jars" / f"kafka-{jars.KAFKA.version}"
    assert jars.SPARK_KAFKA.out_dir == tmp_path / "jars" / f"spark-kafka-{jars.SPARK_KAFKA.version}"
    assert jars.KAFKA.classpath == str(jars.KAFKA.out_dir / "*")


def test_a_set_counts_as_fetched_only_with_its_marker_for_this_pom(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERS_CACHE", str(tmp_path / "cache"))
    pom = tmp_path / "tools" / "kafka" / "pom.xml"
    pom.parent.mkdir(parents=True)
    (tmp_path / "tools" / "k8s").mkdir()
    (tmp_path / "tools" / "k8s" / "go.mod").write_text("module x\n")
    monkeypatch.setenv("TIERS_REPO", str(tmp_path))
    pom.write_text(POM)
    jar_set = jars.JarSet(name="kafka", version_property="kafka.version", title="test")

    jar_set.out_dir.mkdir(parents=True)
    (jar_set.out_dir / "kafka-clients-4.9.9.jar").write_bytes(b"")
    assert not jars.is_fetched(jar_set)  # an interrupted fetch leaves no marker

    (jar_set.out_dir / ".complete").write_text(jars._marker_text(jar_set))
    assert jars.is_fetched(jar_set)
    assert jars.ensure_fetched(jar_set) == jar_set.out_dir  # no Maven run
    assert jar_set.jars() == [jar_set.out_dir / "kafka-clients-4.9.9.jar"]

    pom.write_text(POM.replace("</properties>", "<x>1</x></properties>"))
    assert not jars.is_fetched(jar_set)  # a changed pom (say, a new exclusion) fetches again


def test_a_connector_for_another_spark_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jars, "installed_pyspark", lambda: "3.5.1")
    with pytest.raises(RuntimeError, match=r"pyspark 3\.5\.1 is installed"):
        jars.connector_jars()


@pytest.mark.parametrize(
    ("line", "artifact"),
    [
        (
            "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/apache/"
            "kafka/kafka-clients/4.1.1/kafka-clients-4.1.1.jar (20 MB at 9.1 MB/s)",
            "kafka-clients-4.1.1.jar",
        ),
        ("Downloading from central: https://repo.maven.apache.org/maven2/x/y.pom", None),
        ("[INFO] BUILD SUCCESS", None),
    ],
)
def test_maven_downloads_are_counted_for_progress(line: str, artifact: str | None) -> None:
    assert jars.downloaded_artifact(line) == artifact
