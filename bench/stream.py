"""The stream tier's benchmark: Kafka -> Spark job -> mock model -> Kafka, beside Kafka alone.

In one run, on this machine, with a real single-node Kafka broker on 127.0.0.1:

- Kafka's own ceiling: one producer writes N ~200-byte events, one consumer reads them back;
- sustained throughput of the pipeline: the input topic is loaded with N events first, then the
  Spark job (`python -m tiers.runtime.stream job`, `local[2]`) starts and scores them against
  the mock model; the bench counts the results in the output (and dead-letter) topic. One run
  per variant: each events-per-request (default 1: chat, one request per event; and 64:
  completions, a list of prompts per request), and within it each mock latency (0 and 20 ms);
- latency at constant rates: with the job caught up, events go in at each rate with their send
  time in them; each result is timed when the bench reads it back. A variant that does not keep
  up at one rate skips the higher ones.

    .venv/bin/python bench/stream.py           # the full run, under 10 minutes
    .venv/bin/python bench/stream.py --quick   # a smoke run, 2-3 minutes

It prints a Markdown report and writes it to --out. Every process it starts (broker, mock, job)
is stopped when it ends, also on Ctrl-C, SIGTERM or an error. This module is the entry point; the
parts live beside it: `stream_options` (the command line), `stream_pipeline` (the runs),
`stream_cpu` (CPU sampling) and `stream_report` (the tables).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import machine
import options
import servers
import stream_options
import stream_pipeline
import stream_report
import table


def main(argv: Sequence[str] | None = None) -> int:
    settings = stream_options.parse_args(argv)
    clock = machine.Clock()
    facts = stream_report.machine_facts()
    print(table.facts(facts), file=sys.stderr, flush=True)
    try:
        with (
            machine.sigterm_unwinds(),
            options.workdir(settings.workdir, prefix="tiers-bench-stream-") as workdir,
        ):
            ceiling, runs = stream_pipeline.measure_all(settings, workdir, clock)
    except servers.ServerFailed as failed:
        print(f"a process did not start or died: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process the bench started is stopped", file=sys.stderr)
        return 130
    facts["load average after the run"] = machine.load_average()
    facts["bench wall time"] = f"{time.monotonic() - clock.started:,.0f} s"
    table.publish(stream_report.render(settings, facts, ceiling, runs), settings.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
