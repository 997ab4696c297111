"""Benchmarks that measure one code path in several variants, each in a process of its own,
beside the same code at an earlier revision ("main, before ..."): the parts they share.

`add_arguments` gives a bench the options they all take (`--rounds`, `--baseline`: by default the
revision before a file first appeared, `--out`, the hidden `--child`); `traced_run` is the parent's
harness: a scratch folder holding the baseline's `runtime/` (first on that variant's PYTHONPATH),
an OTLP receiver for the spans, the report's facts, and `measure`, which runs the bench's own file
once per variant as a child with the variant's spec (JSON) and reads back the JSON line it prints
last. Used by `tracing.py` and `stream_tracing.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import machine

Case = tuple[str, dict[str, Any], str | None]
"""A variant: its label, what it changes in the common spec, and its PYTHONPATH (or None)."""

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPORT_INTERVAL_S = 0.5


def add_arguments(
    parser: argparse.ArgumentParser, *, since: str, baseline: str, out: pathlib.Path
) -> None:
    """`--rounds`; `--baseline`, the revision measured as the `baseline` variant (by default the one
    before `since` first appeared); `--out` (default `out`); and `--child`, how a variant runs."""
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline",
        default=commit_before(since),
        help=f"the git revision measured as '{baseline}'",
    )
    parser.add_argument("--out", type=pathlib.Path, default=out)
    parser.add_argument("--child", help=argparse.SUPPRESS)


def commit_before(path: str) -> str:
    """The revision before the first commit that touched `path` (HEAD when none did)."""
    found = subprocess.run(
        ["git", "log", "--format=%H", "--", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return f"{found[-1]}^" if found else "HEAD"


def short(revision: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def extract_runtime(revision: str, into: pathlib.Path) -> pathlib.Path:
    """`runtime/` as it was at `revision`, under `into`; the path to put on PYTHONPATH."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", revision, "runtime"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "runtime"


def run_child(script: str, spec: dict[str, Any], *, pythonpath: str | None) -> dict[str, float]:
    """`script --child SPEC` in a process of its own (`pythonpath` first on its path, if set);
    its last line of output, parsed."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, script, "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"variant failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    script: str,
    cases: Sequence[Case],
    common: dict[str, Any],
    *,
    say: Callable[[str], None],
    spans_received: Callable[[], int],
) -> list[tuple[str, dict[str, float]]]:
    """Each case's result, in order, with the spans received while it ran ("spans")."""
    rows = []
    for index, (label, changes, pythonpath) in enumerate(cases):
        say(f"measuring: {label}")
        spec = {**common, **changes, "tag": f"{time.time_ns()}-{index}"}
        received = spans_received()
        result = run_child(script, spec, pythonpath=pythonpath)
        result["spans"] = spans_received() - received
        rows.append((label, result))
    return rows


@dataclasses.dataclass(frozen=True)
class TracedRun:
    """What the variants of one run share (`traced_run`)."""

    script: str
    work: pathlib.Path
    """A scratch folder, removed after the run."""
    baseline: str
    """The baseline's `runtime/`: the PYTHONPATH of the variant that measures it."""
    tracing_on: dict[str, Any]
    """The `tracing` config of a variant that exports its spans to this run's receiver."""
    facts: dict[str, str]
    """The report's facts: the machine's, the baseline's revision, and (once the run has ended)
    the load average after it."""
    spans_received: Callable[[], int]
    say: Callable[[str], None]

    def measure(
        self, cases: Sequence[Case], common: dict[str, Any]
    ) -> list[tuple[str, dict[str, float]]]:
        return measure(self.script, cases, common, say=self.say, spans_received=self.spans_received)


@contextlib.contextmanager
def traced_run(script: str, baseline: str, *, prefix: str) -> Iterator[TracedRun]:
    """The parent's side of a bench whose variants export spans: `baseline`'s runtime extracted
    into a scratch folder (named from `prefix`), an OTLP/HTTP receiver in this process (decoding
    the real protobuf, so its work is not counted in the children's), SIGTERM unwinding through
    both."""
    from tiers.devenv import otlp_receiver

    clock = machine.Clock()
    facts = machine.common_facts()
    facts["baseline"] = short(baseline)
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        work = pathlib.Path(scratch)
        extracted = extract_runtime(baseline, work / "baseline")
        receiver = otlp_receiver.OtlpReceiver()
        try:
            with machine.sigterm_unwinds():
                yield TracedRun(
                    script=script,
                    work=work,
                    baseline=str(extracted),
                    tracing_on={
                        "otlp_endpoint": receiver.url,
                        "export_interval_s": EXPORT_INTERVAL_S,
                    },
                    facts=facts,
                    spans_received=lambda: len(receiver.spans()),
                    say=clock.say,
                )
        finally:
            receiver.close()
    facts["load average after the run"] = machine.load_average()
