"""Benchmarks that measure one code path in several variants, each in a process of its own,
beside the same code at an earlier revision ("main, before ..."): the parts they share.

`commit_before(path)` names the revision before `path` first appeared; `extract_runtime` puts
that revision's `runtime/` in a folder to go first on PYTHONPATH; `run_child` runs the bench's
own file as a child with a variant's spec (JSON) and reads back the JSON line it prints last.
Used by `tracing.py` and `stream_tracing.py`.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

Case = tuple[str, dict[str, Any], str | None]
"""A variant: its label, what it changes in the common spec, and its PYTHONPATH (or None)."""

ROOT = pathlib.Path(__file__).resolve().parent.parent


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
