"""What the benchmarks' command lines share: lists of numbers, and the folder `--workdir` names
(kept after the run) or a temporary one."""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import tempfile
from collections.abc import Iterator


def numbers(
    parser: argparse.ArgumentParser, flag: str, text: str, *, minimum: int
) -> tuple[int, ...]:
    """Comma-separated whole numbers, each at least `minimum`, without repeats (a repeated one
    would repeat a run under the same names); a usage error otherwise."""
    try:
        found = tuple(int(number) for number in text.split(",") if number.strip())
    except ValueError:
        parser.error(f"{flag} {text!r}: give whole numbers, comma-separated")
    if not found or min(found) < minimum:
        parser.error(f"{flag} needs at least one number of {minimum} or more")
    return tuple(dict.fromkeys(found))


@contextlib.contextmanager
def workdir(kept: pathlib.Path | None, *, prefix: str) -> Iterator[pathlib.Path]:
    """`kept`, created if need be, or a temporary folder removed at the end."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield pathlib.Path(tmp)
