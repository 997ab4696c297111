"""Prompt templates: `str.format`-style `{field}` placeholders filled from one event or record.

`config.ModelCallConfig` checks a template when it is built (`check`); `client.ModelClient`
renders it once per row (`render`). A row that cannot fill the template is that row's error,
never the batch's: `render` raises `PromptError`, which the client turns into an error row.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any


class PromptError(Exception):
    """The row cannot fill the template; the message is the row's error."""


def check(template: str) -> tuple[str, ...]:
    """The field names a template uses; ValueError for a malformed or positional template."""
    names: list[str] = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        name = _top_level(field)
        if not name or name.isdigit():
            raise ValueError(
                f"placeholder {{{field}}} is positional; name a field instead, e.g. {{text}}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def render(template: str, row: Mapping[str, Any]) -> str:
    """The prompt for one row. A field that is absent or null is missing (Spark nulls are None)."""
    try:
        return template.format_map(_Fields(row))
    except _Missing as missing:
        raise PromptError(f"missing field '{missing.name}'") from None
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as error:
        raise PromptError(f"prompt template: {type(error).__name__}: {error}") from None


def _top_level(field: str) -> str:
    for i, char in enumerate(field):
        if char in ".[":
            return field[:i]
    return field


class _Missing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Fields:
    """What `format_map` reads from: the row, with absent and null fields reported as missing
    (apart from errors inside a format spec or an index, which keep their own message)."""

    __slots__ = ("_row",)

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row

    def __getitem__(self, name: str) -> Any:
        try:
            value = self._row[name]
        except KeyError:
            raise _Missing(name) from None
        if value is None:
            raise _Missing(name)
        return value
