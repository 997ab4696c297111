"""The stream job with the model taken out: Kafka → Spark → the same Python worker round trip,
passing each event's value through unchanged → Kafka. What the bench divides the real job by:
the events/s that Spark Structured Streaming itself reaches on this machine, with the job's own
session, source, sink and settings (`tiers.runtime.stream.job`), before any model call.

    python bench/passthrough_job.py --config job.json
"""

from __future__ import annotations

import argparse
import logging
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

from tiers.runtime.stream import config, job


def passthrough(output_topic: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A `mapInArrow` function: every record's key and value, as they came, to `output_topic`."""

    def copy(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow

        for batch in batches:
            yield pyarrow.RecordBatch.from_arrays(
                [
                    batch.column("key"),
                    batch.column("value").cast(pyarrow.binary()),
                    pyarrow.array([output_topic] * batch.num_rows, pyarrow.string()),
                ],
                names=["key", "value", "topic"],
            )

    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=pathlib.Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    settings = config.load(args.config)
    job.run(settings, passthrough(settings.output_topic))


if __name__ == "__main__":
    main()
