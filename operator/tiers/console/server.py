"""The console's command line and server: `tiers-console`, `tiers console`,
`python -m tiers.console`; listens on :8088 with the limits of a public listener."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib

import uvicorn

from tiers.console import app, identity, state

PORT = 8088
FRONTEND_ENV = "TIERS_CONSOLE_FRONTEND_DIR"
"""Where the built frontend is (the image's copy); else the source tree's frontend/dist."""
DEFAULT_FRONTEND = pathlib.Path(
    os.environ.get(FRONTEND_ENV)
    or pathlib.Path(__file__).resolve().parents[3] / "frontend" / "dist"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument(
        "--frontend-dir", type=pathlib.Path, default=DEFAULT_FRONTEND,
        help="the built frontend (default: the repository's frontend/dist)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-anonymous-read", action="store_true",
        help="serve callers without a token with the console's own account (read only; for the"
        " local demo)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-anonymous-write", action="store_true",
        help="also let callers without a token start batch jobs and upload (local demo only)",
    )  # fmt: skip
    parser.add_argument(
        "--namespace", action="append", default=[], dest="namespaces",
        help="record series in this namespace only (repeatable; default every namespace)",
    )  # fmt: skip
    parser.add_argument("--series-file", type=pathlib.Path, default=None,
                        help="keep the series in this file across restarts")  # fmt: skip
    parser.add_argument(
        "--batch-root", type=pathlib.Path, default=None,
        help="BatchJob input and output file:// URIs under this folder may be uploaded to and"
        " downloaded from (default: none)",
    )  # fmt: skip
    parser.add_argument("--max-upload-mb", type=int, default=512)
    parser.add_argument(
        "--url-override", action="append", default=[], metavar="IN_CLUSTER=REACHABLE",
        help="reach a gateway's or push gateway's in-cluster URL at another URL (local mode)",
    )  # fmt: skip


def settings_from(args: argparse.Namespace) -> state.Settings:
    overrides = {}
    for pair in args.url_override:
        in_cluster, sep, reachable = pair.partition("=")
        if not sep or not in_cluster or not reachable:
            raise SystemExit(f"--url-override {pair!r}: expected IN_CLUSTER=REACHABLE")
        overrides[in_cluster.rstrip("/")] = reachable.rstrip("/")
    return state.Settings(
        frontend_dir=args.frontend_dir,
        series_file=args.series_file,
        namespaces=tuple(args.namespaces),
        batch_root=None if args.batch_root is None else args.batch_root.resolve(),
        max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        url_overrides=overrides,
    )


def run_from_arguments(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The HTTP client logs every apiserver request at INFO: too much, and its business only.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    identities = identity.Identities(
        allow_anonymous_read=args.allow_anonymous_read,
        allow_anonymous_write=args.allow_anonymous_write,
    )
    uvicorn.run(
        app.create_app(settings_from(args), identities),
        host=args.host,
        port=args.port,
        log_level="warning",
        # No access log: a request line may hold a token-bearing URL, and no header is logged.
        access_log=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=5,
        limit_concurrency=1024,
        h11_max_incomplete_event_size=64 * 1024,
        ws="none",
        proxy_headers=False,
        server_header=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tiers-console", description=__doc__)
    add_arguments(parser)
    run_from_arguments(parser.parse_args(argv))
