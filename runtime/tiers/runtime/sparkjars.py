"""Where Spark's Kafka connector jars are, for a job that is not told (`--jars`, a config's
`jars`): the stream job run as the README shows it, on a laptop or in the image.

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
"""Where the image keeps the connector (the Dockerfile's tools/image/populate.sh)."""
DEV_CACHE_SET = "spark-kafka"
"""The jar set's name: tools/spark-kafka/pom.xml, cached as `spark-kafka-<spark version>`."""


def cache_root(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """Where Tiers caches what it builds and fetches: `$TIERS_CACHE`, else
    `$XDG_CACHE_HOME/tiers`, else `~/.cache/tiers`."""
    root = environ.get("TIERS_CACHE") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tiers"
    )
    return pathlib.Path(root)


def dev_cache_dir(spark_version: str, environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """The folder `tiers dev up` fetches the connector of `spark_version` into."""
    return cache_root(environ) / "jars" / f"{DEV_CACHE_SET}-{spark_version}"


def find(
    environ: Mapping[str, str] = os.environ, *, image_dir: pathlib.Path | None = None
) -> tuple[str, ...]:
    """The connector's jars from the first well-known place that has them; () when none has
    (then Spark says "Failed to find data source: kafka", and `tiers dev up` fetches them)."""
    explicit = environ.get(ENV, "")
    if explicit.strip():
        return tuple(jar for jar in explicit.split(",") if jar)
    spark = _pyspark_version()
    places = [image_dir or pathlib.Path(IMAGE_DIR)]
    if spark is not None:
        places.append(dev_cache_dir(spark, environ))
    for place in places:
        jars = sorted(place.glob("*.jar")) if place.is_dir() else []
        if jars:
            return tuple(str(jar) for jar in jars)
    return ()


def _pyspark_version() -> str | None:
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        return None
