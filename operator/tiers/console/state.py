"""What the console's routes share, kept on the app (`app.state.console`)."""

from __future__ import annotations

import dataclasses
import pathlib

import fastapi

from tiers.console import identity, series


@dataclasses.dataclass
class Settings:
    frontend_dir: pathlib.Path
    series_file: pathlib.Path | None = None
    namespaces: tuple[str, ...] = ()
    batch_root: pathlib.Path | None = None
    """Where uploads may be written and results read: file:// URIs under it only."""
    max_upload_bytes: int = 512 * 1024 * 1024
    url_overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    """In-cluster URL → URL this console reaches it at (local mode: processes on 127.0.0.1)."""


@dataclasses.dataclass
class Console:
    settings: Settings
    identities: identity.Identities
    rings: series.Rings


def of(request: fastapi.Request) -> Console:
    console: Console = request.app.state.console
    return console
