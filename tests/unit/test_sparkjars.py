"""The stream and batch jobs find Spark's Kafka and Delta Lake connectors by themselves: `TIERS_SPARK_JARS`, the image's
folder, or the cache `tiers dev up` fills, in that order; `tiers dev env` exports where it is."""

from __future__ import annotations

import pathlib

import pytest

from tiers.devenv import cluster, jars
from tiers.operator.manifests import spark_application, stream_children
from tiers.runtime import sparkjars
from tiers.runtime.stream import cli

CONNECTOR = ("kafka-clients-3.9.2.jar", "spark-sql-kafka-0-10_2.13-4.2.0.jar")


def fill(folder: pathlib.Path) -> list[str]:
    folder.mkdir(parents=True)
    for name in CONNECTOR:
        (folder / name).write_bytes(b"PK")
    return [str(folder / name) for name in CONNECTOR]


def test_the_variable_wins_over_every_folder(tmp_path: pathlib.Path) -> None:
    image = tmp_path / "image"
    fill(image)
    found = sparkjars.find({sparkjars.ENV: "/a.jar,/b.jar"}, image_dir=image)
    assert found == ("/a.jar", "/b.jar")


def test_the_image_folder_comes_before_the_dev_cache(tmp_path: pathlib.Path) -> None:
    in_image = fill(tmp_path / "image")
    fill(sparkjars.dev_cache_dir(jars.installed_pyspark() or "", {"TIERS_CACHE": str(tmp_path)}))
    found = sparkjars.find({"TIERS_CACHE": str(tmp_path)}, image_dir=tmp_path / "image")
    assert list(found) == in_image


def test_outside_the_image_the_dev_cache_of_the_installed_spark_is_found(
    tmp_path: pathlib.Path,
) -> None:
    environ = {"TIERS_CACHE": str(tmp_path / "cache")}
    cached = fill(sparkjars.dev_cache_dir(jars.installed_pyspark() or "", environ))
    found = sparkjars.find(environ, image_dir=tmp_path / "no-image")
    assert list(found) == cached


def test_the_dev_caches_kafka_and_delta_lake_sets_are_found_together(
    tmp_path: pathlib.Path,
) -> None:
    environ = {"TIERS_CACHE": str(tmp_path / "cache")}
    spark = jars.installed_pyspark() or ""
    kafka = fill(sparkjars.dev_cache_dir(spark, environ))
    delta = sparkjars.dev_cache_dir(spark, environ, name="spark-delta")
    delta.mkdir(parents=True)
    (delta / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"PK")
    found = sparkjars.find(environ, image_dir=tmp_path / "no-image")
    assert list(found) == [*kafka, str(delta / "delta-spark_4.2_2.13-4.4.0.jar")]


def test_nothing_found_is_empty_not_an_error(tmp_path: pathlib.Path) -> None:
    environ = {"TIERS_CACHE": str(tmp_path)}
    assert sparkjars.find(environ, image_dir=tmp_path / "no-image") == ()


@pytest.mark.parametrize(
    "environ",
    [{"TIERS_CACHE": "/c/tiers"}, {"XDG_CACHE_HOME": "/xdg"}, {"HOME": "/home/me"}],
)
def test_the_runtime_looks_where_tiers_dev_up_fetches(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TIERS_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert sparkjars.dev_cache_dir(jars.SPARK_KAFKA.version) == jars.SPARK_KAFKA.out_dir
    assert [sparkjars.dev_cache_dir(s.version, name=s.name) for s in jars.SPARK_SETS] == [
        s.out_dir for s in jars.SPARK_SETS
    ]


def test_the_operator_names_the_image_folder_the_runtime_looks_in() -> None:
    assert (f"{sparkjars.IMAGE_DIR}/*.jar",) == stream_children.JARS
    assert f"{sparkjars.IMAGE_DIR}/*" == spark_application.JARS_CLASSPATH


FLAGS = ["job", "--bootstrap", "127.0.0.1:9092", "--input", "in", "--output", "out",
         "--dead-letter", "dlq", "--backend", "openai-compatible=http://127.0.0.1:1/v1",
         "--prompt", "Summarize: {text}", "--checkpoint", "/tmp/ckpt"]  # fmt: skip


def test_the_job_run_as_the_readme_shows_it_gets_the_found_jars(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(sparkjars.ENV, raising=False)
    monkeypatch.setenv("TIERS_CACHE", str(tmp_path))
    cached = fill(sparkjars.dev_cache_dir(jars.installed_pyspark() or ""))
    args = cli.build_parser().parse_args(FLAGS)
    assert list(cli.job_settings(args).jars) == cached


def test_jars_given_on_the_command_line_are_taken_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(sparkjars.ENV, "/from/env.jar")
    args = cli.build_parser().parse_args([*FLAGS, "--jars", "/x/a.jar,/x/b.jar"])
    assert cli.job_settings(args).jars == ("/x/a.jar", "/x/b.jar")


def test_dev_env_exports_where_the_connector_is(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERS_CACHE", str(tmp_path))
    cached = fill(jars.SPARK_KAFKA.out_dir)
    running = cluster.DevCluster(
        state_dir=tmp_path, kubeconfig=tmp_path / "kubeconfig", server="https://127.0.0.1:1",
        redis_url="redis://127.0.0.1:2", kafka_bootstrap="127.0.0.1:3", bin_path=(), processes={},
    )  # fmt: skip
    assert running.env()[sparkjars.ENV] == ",".join(cached)
