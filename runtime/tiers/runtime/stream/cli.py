"""`python -m tiers.runtime.stream job|push`: the streaming job and the push gateway, from the
config the operator renders (`--config`) or from flags:

    python -m tiers.runtime.stream job --bootstrap 127.0.0.1:9092 --input IN --output OUT \\
        --dead-letter DLQ --backend openai-compatible=http://127.0.0.1:9001/v1 \\
        --prompt 'Summarize: {text}' --checkpoint /tmp/ckpt
    python -m tiers.runtime.stream push --bootstrap 127.0.0.1:9092 --input IN --output OUT
"""

from __future__ import annotations

import argparse
import logging
import pathlib

from tiers.runtime import modelcall, providers, sparkjars, tls
from tiers.runtime.stream import config
from tiers.runtime.tracing import config as tracing_config

SERVICE_NAME = "tiers-stream"
"""The `service.name` of the job's spans, as the operator names it."""


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "job":
        from tiers.runtime.stream import job as streaming

        streaming.run(job_settings(args))
    else:
        serve_push(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tiers.runtime.stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("job", help="the Spark streaming job")
    job.add_argument("--config", type=pathlib.Path, help="JSON config (what the operator renders)")
    job.add_argument("--bootstrap", help="Kafka host:port[,host:port]")
    job.add_argument("--input")
    job.add_argument("--output")
    job.add_argument("--dead-letter")
    job.add_argument("--backend", metavar="PROVIDER=URL", help="e.g. openai-compatible=URL")
    job.add_argument("--endpoint", metavar="URL", help="a Tiers RealtimeEndpoint's /v1 URL")
    job.add_argument("--model", default="gpt-4o-mini")
    job.add_argument("--prompt", help="template with {field} placeholders")
    job.add_argument("--checkpoint")
    job.add_argument("--trigger-ms", type=int, default=500)
    job.add_argument("--max-offsets", type=int, help="maxOffsetsPerTrigger")
    job.add_argument("--max-in-flight", type=int, default=64)
    job.add_argument("--route", choices=("chat", "completions", "embeddings"), default="chat")
    job.add_argument(
        "--rows-per-request", type=int, default=1, help="events per completions/embeddings call"
    )
    job.add_argument("--stats-redis", help="redis://... for status stats")
    job.add_argument("--pipeline", default="local/pipeline", help="namespace/name for stats")
    job.add_argument("--master", default="local[2]")
    job.add_argument(
        "--jars",
        help=f"comma-separated connector jars (default: ${sparkjars.ENV}, else the image's "
        f"{sparkjars.IMAGE_DIR}, else the cache `tiers dev up` fills)",
    )
    job.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send a span per event's model call to this OTLP/HTTP collector (URL/v1/traces)",
    )
    job.add_argument(
        "--trace-sample",
        type=float,
        default=1.0,
        help="the share (0 to 1) of events without a producer's traceparent that are traced",
    )
    push = commands.add_parser("push", help="the push gateway (HTTP in, SSE/WebSocket out)")
    push.add_argument("--config", type=pathlib.Path)
    push.add_argument("--bootstrap")
    push.add_argument("--input")
    push.add_argument("--output")
    push.add_argument("--host", default="127.0.0.1")
    push.add_argument("--port", type=int, default=8086)
    tls.add_flags(push)
    push.add_argument("--api-keys-dir", type=pathlib.Path, help="folder of files, one key each")
    push.add_argument(
        "--allowed-origin", action="append", default=[], help="a web page's origin (repeatable)"
    )
    return parser


def job_settings(args: argparse.Namespace) -> config.StreamJobConfig:
    if args.config is not None:
        return config.load(args.config)
    required = ("bootstrap", "input", "output", "dead_letter", "prompt", "checkpoint")
    missing = [flag for flag in required if getattr(args, flag) is None]
    if missing or (args.backend is None) == (args.endpoint is None):
        raise SystemExit(
            "give --config, or --bootstrap --input --output --dead-letter --prompt --checkpoint "
            "and one of --backend or --endpoint"
        )
    target: providers.BackendConfig | modelcall.EndpointTarget = (
        providers.parse_backend_flag(args.backend, 0)
        if args.backend
        else modelcall.EndpointTarget(url=args.endpoint)
    )
    jars = tuple(jar for jar in args.jars.split(",") if jar) if args.jars else sparkjars.find()
    return config.StreamJobConfig(
        pipeline=args.pipeline,
        bootstrap=args.bootstrap,
        input_topic=args.input,
        output_topic=args.output,
        dead_letter_topic=args.dead_letter,
        model=modelcall.ModelCallConfig(
            target=target,
            model=args.model,
            prompt=args.prompt,
            route=args.route,
            rows_per_request=args.rows_per_request,
            max_in_flight=args.max_in_flight,
        ),
        checkpoint=args.checkpoint,
        trigger_interval_ms=args.trigger_ms,
        max_offsets_per_trigger=args.max_offsets,
        stats_redis_url=args.stats_redis,
        master=args.master,
        jars=jars,
        tracing=None
        if args.otlp_endpoint is None
        else tracing_config.TracingConfig(
            otlp_endpoint=args.otlp_endpoint,
            sample_ratio=args.trace_sample,
            service_name=SERVICE_NAME,
        ),
    )


def serve_push(args: argparse.Namespace) -> None:
    import uvicorn

    from tiers.runtime.stream import push

    if args.config is not None:
        settings = config.load(args.config)
        bootstrap, input_topic, output_topic = (
            settings.bootstrap_servers(), settings.input_topic, settings.output_topic,
        )  # fmt: skip
        push_settings = settings.push
    else:
        bootstrap, input_topic, output_topic = args.bootstrap, args.input, args.output
        push_settings = config.PushConfig(
            api_keys_dir=args.api_keys_dir, allowed_origins=tuple(args.allowed_origin)
        )
    app = push.PushGateway(
        bootstrap=bootstrap, input_topic=input_topic, output_topic=output_topic,
        settings=push_settings,
    )  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                lifespan="on", ws_max_size=push_settings.max_message_bytes,
                limit_concurrency=4096, timeout_keep_alive=75,
                **tls.uvicorn_settings(args.tls_cert_file, args.tls_key_file))  # fmt: skip
