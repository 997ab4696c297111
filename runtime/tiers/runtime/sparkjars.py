"""Where Spark's connector jars (Kafka, Delta Lake) are, for a job that is not told (`--jars`, a
config's `jars`): the stream and batch jobs run as the README shows them, on a laptop or in the
image.

The well-known places, first found wins: `TIERS_SPARK_JARS` (comma-separated paths, what
`tiers dev env` exports), the image's folder (`IMAGE_DIR`, where the operator's manifests name
them), and the cache that `tiers dev up` fills (`dev_cache_dir()`, one folder per Spark version).
The runtime never imports the dev tooling, so it keeps this small list of its own;
`tiers.devenv.jars` fetches into `dev_cache_dir()`.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
from collections.abc import Mapping

ENV = "TIERS_SPARK_JARS"
IMAGE_DIR = pathlib.PurePosixPath("/opt/tiers/jars")
"""Where the image keeps the connectors (the Dockerfile's tools/image/populate.sh)."""
IMAGE_JARS = (f"{IMAGE_DIR}/*.jar",)
"""The image's connectors as a job's `jars` (Spark expands the glob)."""
DEV_CACHE_SET = "spark-kafka"
"""The Kafka connector's jar set: tools/spark-kafka/pom.xml, cached as `spark-kafka-<spark
version>`."""
DEV_CACHE_SETS = (DEV_CACHE_SET, "spark-delta")
"""Every jar set a job's session takes from the cache: Kafka's and Delta Lake's connectors."""


def cache_root(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """Where Tiers caches what it builds and fetches: `$TIERS_CACHE`, else
    `$XDG_CACHE_HOME/tiers`, else `~/.cache/tiers`."""
    root = environ.get("TIERS_CACHE") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tiers"
    )
    return pathlib.Path(root)


def dev_cache_dir(
    spark_version: str, environ: Mapping[str, str] = os.environ, *, name: str = DEV_CACHE_SET
) -> pathlib.Path:
    """The folder `tiers dev up` fetches a connector (jar set `name`) of `spark_version` into."""
    return cache_root(environ) / "jars" / f"{name}-{spark_version}"


def find(
    environ: Mapping[str, str] = os.environ, *, image_dir: pathlib.Path | None = None
) -> tuple[str, ...]:
    """The connectors' jars from the first well-known place that has them (the cache's sets
    together); () when none has (then Spark says "Failed to find data source: kafka", and
    `tiers dev up` fetches them)."""
    explicit = environ.get(ENV, "")
    if explicit.strip():
        return tuple(jar for jar in explicit.split(",") if jar)
    spark = _pyspark_version()
    places = [[image_dir or pathlib.Path(IMAGE_DIR)]]
    if spark is not None:
        places.append([dev_cache_dir(spark, environ, name=name) for name in DEV_CACHE_SETS])
    for folders in places:
        jars = [
            jar for folder in folders if folder.is_dir() for jar in sorted(folder.glob("*.jar"))
        ]
        if jars:
            return tuple(str(jar) for jar in jars)
    return ()


def _pyspark_version() -> str | None:
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        return None
