"""Serving the gateway: from the operator's config file, or from flags for quick use.

    python -m tiers.runtime.gateway --config /etc/tiers/gateway.yaml
    python -m tiers.runtime.gateway --port 8082 \\
        --backend openai-compatible=http://127.0.0.1:9001/v1 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import os
import pathlib

import uvicorn

from tiers.runtime import providers, tls
from tiers.runtime.gateway import app, config, connections
from tiers.runtime.tracing import config as tracing_config

CONFIG_ENV = "TIERS_GATEWAY_CONFIG_JSON"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tiers.runtime.gateway", description=__doc__)
    parser.add_argument(
        "--config", type=pathlib.Path, help="YAML/JSON config (what the operator renders)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    tls.add_flags(parser)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="PROVIDER=URL",
        help="openai|azure-openai|openai-compatible=BASE_URL, in fallback order (repeatable); "
        "the key of the Nth comes from $TIERS_BACKEND_<N>_API_KEY",
    )
    parser.add_argument("--redis", help="redis://host:port/db for the shared cache and limits")
    parser.add_argument("--model", help="serve only this model name")
    parser.add_argument("--api-keys-dir", type=pathlib.Path, help="folder of files, one key each")
    parser.add_argument("--rpm", type=int, help="requests per minute per key")
    parser.add_argument("--tpm", type=int, help="tokens per minute per key")
    parser.add_argument("--cache-ttl", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument(
        "--audit-sample",
        type=_ratio,
        metavar="RATIO",
        help="log this share (0 to 1) of model calls as JSON lines on stdout (default 0: none)",
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send a span per model call to this OTLP/HTTP collector (spans go to URL/v1/traces)",
    )
    parser.add_argument(
        "--trace-sample",
        type=_ratio,
        default=1.0,
        metavar="RATIO",
        help="the share (0 to 1) of traces no caller started that are recorded (default 1)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        help="for a request's headers and body to arrive (default 30)",
    )
    parser.add_argument(
        "--max-connections", type=int, help="open client connections (default 4096)"
    )
    return parser.parse_args(argv)


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a ratio from 0 to 1")
    return value


REDIS_URL_ENV = "TIERS_REDIS_URL"


def settings_from(args: argparse.Namespace) -> config.GatewayConfig:
    settings = _settings(args)
    limits = {
        name: value
        for name, value in (
            ("request_timeout_s", args.request_timeout),
            ("max_connections", args.max_connections),
        )
        if value is not None
    }
    if args.audit_sample is not None:
        settings = settings.model_copy(update={"audit_sample_ratio": args.audit_sample})
    if args.otlp_endpoint is not None:
        tracing = tracing_config.TracingConfig(
            otlp_endpoint=args.otlp_endpoint, sample_ratio=args.trace_sample
        )
        settings = settings.model_copy(update={"tracing": tracing})
    if limits:
        merged = settings.limits.model_dump() | limits
        settings = settings.model_copy(
            update={"limits": config.ServerLimits.model_validate(merged)}
        )
    return settings


def _settings(args: argparse.Namespace) -> config.GatewayConfig:
    if args.config is not None:
        settings = config.load(args.config)
        # The operator keeps Redis URLs (they may hold a password) out of the ConfigMap.
        if settings.redis_url is None and os.environ.get(REDIS_URL_ENV):
            settings = settings.model_copy(update={"redis_url": os.environ[REDIS_URL_ENV]})
        return settings
    if not args.backend:
        raise SystemExit("give --config FILE or at least one --backend PROVIDER=URL")
    return config.GatewayConfig(
        model=args.model,
        backends=tuple(
            providers.parse_backend_flag(value, index) for index, value in enumerate(args.backend)
        ),
        redis_url=args.redis,
        api_keys_dir=args.api_keys_dir,
        cache=config.CacheConfig(enabled=not args.no_cache, ttl_seconds=args.cache_ttl),
        rate_limits=config.RateLimitConfig(
            requests_per_minute=args.rpm, tokens_per_minute=args.tpm
        ),
    )


def app_from_env() -> app.Gateway:
    """The factory uvicorn's worker processes call: the config travels in the environment."""
    settings = config.GatewayConfig.model_validate_json(os.environ[CONFIG_ENV])
    connections.configure(settings.limits)
    return app.Gateway(settings)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_from(args)
    os.environ[CONFIG_ENV] = settings.model_dump_json()
    uvicorn.run(
        "tiers.runtime.gateway.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # uvicorn's httptools protocol with the limits of a public listener (see `connections`);
        # no WebSocket support: the gateway refuses upgrades itself.
        http=connections.GatewayProtocol,
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=75,
        # Nothing here reads forwarded headers, and clients need no Server or Date header.
        proxy_headers=False,
        server_header=False,
        date_header=False,
        **tls.uvicorn_settings(args.tls_cert_file, args.tls_key_file),
    )
