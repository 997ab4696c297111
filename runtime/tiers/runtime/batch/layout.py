"""Where a run's results live under its output URI. Pure.

    <output>/attempt=<n>/outcome=ok/part-*      records scored, one line or row each
    <output>/attempt=<n>/outcome=error/part-*   records that failed, with the reason

Every attempt of a run (the first, and each rerun after a kill or a failure) writes a new
`attempt=<n>` folder, and Spark's tasks commit their files into it one by one. A rerun scores
only ids without an `ok` result; once an attempt has finished, the error folders of earlier
attempts are dropped, since the records in them were tried again. So after a finished attempt
every id appears exactly once: in some attempt's `ok` folder or in the last attempt's `error`.
Reading `<output>` with Spark gives the `attempt` and `outcome` columns from the folder names.

For an OpenAI batch input file the part files hold OpenAI's output lines (`openai_lines`: `ok`
for 2xx answers, `error` for the rest), and each finished attempt also merges them, replacing
the last merge, into the two files that code written for OpenAI's Batch API reads:

    <output>/output.jsonl    every attempt's ok lines
    <output>/errors.jsonl    the finished attempt's error lines

so every custom_id is in exactly one of them.

A Delta table output (`format: delta`) is the table at `<output>`; the attempts' folders are
staged inside it, under `<output>/_tiers_attempts/` (Parquet parts), where Delta neither reads
nor vacuums (a folder whose name starts with `_`). Each finished attempt replaces the table's
contents with every staged result in one Delta transaction, so the table holds each id exactly
once as above, a reader sees whole attempts only, and the table's history has one version per
finished attempt. A rerun after a kill reads the staged results, as for the other formats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tiers.runtime.batch import records

_ATTEMPT = re.compile(r"^attempt=([0-9]+)$")
OUTPUT_FILE = "output.jsonl"
ERRORS_FILE = "errors.jsonl"
ATTEMPT = "attempt"
"""The folder names' key, and so the column that says which attempt scored a record."""
DELTA_STAGING = "_tiers_attempts"
MERGED_FILES: tuple[tuple[str, str], ...] = (("ok", OUTPUT_FILE), ("error", ERRORS_FILE))
"""(outcome, file name): which part files each merged file of an OpenAI batch is made of."""


def attempts_root(output: str, form: str) -> str:
    """The folder that holds the attempts' folders: the output itself, or a Delta table's staging
    folder."""
    return f"{output.rstrip('/')}/{DELTA_STAGING}" if form == "delta" else output


def attempt_uri(output: str, attempt: int) -> str:
    return f"{output.rstrip('/')}/{ATTEMPT}={attempt}"


def outcome_uri(output: str, attempt: int, outcome: str) -> str:
    return f"{attempt_uri(output, attempt)}/{records.OUTCOME}={outcome}"


def ok_glob(output: str) -> str:
    """Every attempt's good results."""
    return f"{output.rstrip('/')}/attempt=*/{records.OUTCOME}=ok"


def parts_glob(output: str, outcome: str) -> str:
    """Every attempt's part files of one outcome."""
    return f"{output.rstrip('/')}/attempt=*/{records.OUTCOME}={outcome}/part-*"


def merged_uri(output: str, name: str) -> str:
    return f"{output.rstrip('/')}/{name}"


def attempts(names: Iterable[str]) -> list[int]:
    """The attempt numbers among the names of the folders under a run's output, in order."""
    found = (_ATTEMPT.match(name) for name in names)
    return sorted(int(match.group(1)) for match in found if match)


def next_attempt(names: Iterable[str]) -> int:
    return max(attempts(names), default=0) + 1


def superseded_errors(output: str, names: Iterable[str], *, finished: int) -> list[str]:
    """The error folders that a finished attempt made stale: those of every earlier attempt."""
    return [outcome_uri(output, n, "error") for n in attempts(names) if n < finished]
