"""`python -m tiers.runtime.batch run|estimate`: the batch job, from the config the operator
renders (`--config`) or from flags:

    python -m tiers.runtime.batch run --input tickets.jsonl --output out/ \\
        --backend openai-compatible=http://127.0.0.1:9001/v1 --model gpt-4o-mini \\
        --prompt 'Classify: {text}' --route completions --rows-per-request 64
    python -m tiers.runtime.batch estimate --input tickets.jsonl --output out/ ... [--json]
    python -m tiers.runtime.batch run --format openai --input batch_requests.jsonl --output out/ \\
        --endpoint http://chat.team.svc:8080/v1

A rerun with the same --output scores only the records that have no good result yet. An OpenAI
Batch API input file (--format openai) needs no --prompt: each line's body is sent as it is
(--model where it names none), and once a run has finished, out/output.jsonl and out/errors.jsonl
hold its results as OpenAI's Batch API writes them.
Exit codes: 0 done (failed records are in the output's error folder), 1 failed,
2 bad usage, 3 refused: the estimate is above --max-usd, 4 stopped: the run spent --max-usd.
"""

from __future__ import annotations

import argparse
import decimal
import json
import logging
import pathlib
import sys
import typing

from tiers.runtime import modelcall, providers, sparkjars
from tiers.runtime.batch import config, estimate, progress


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tiers.runtime.batch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "score the input"), ("estimate", "records, tokens, cost, time")):
        command = commands.add_parser(name, help=text)
        _add_options(command)
        if name == "estimate":
            command.add_argument("--json", action="store_true", help="print JSON, not a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = job_settings(args)
    except ValueError as error:
        parser.error(str(error))
    from tiers.runtime.batch import job

    try:
        final = job.run(settings, estimate_only=args.command == "estimate")
    except job.Stopped as stopped:
        print(stopped.final.message, file=sys.stderr)
        print(json.dumps(summary(stopped.final, settings)))
        sys.exit(progress.EXIT_CODES.get(stopped.final.state, 1))
    if args.command == "estimate":
        assert final.estimate is not None
        if args.json:
            print(json.dumps(estimate.as_json(final.estimate)))
        else:
            print(estimate.render_table(final.estimate, settings.model))
        return
    print(json.dumps(summary(final, settings)))


def summary(final: progress.Progress, settings: config.BatchJobConfig) -> dict[str, object]:
    """What a run ends with (its last line): the fields of its completion notice."""
    return progress.summary(final, output_uri=settings.output.uri)


def _add_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", type=pathlib.Path, help="JSON config (the operator renders)")
    command.add_argument("--input", help="a path or URI (file://, s3a://, abfss://)")
    command.add_argument("--format", choices=typing.get_args(config.InputFormat), default="jsonl")
    command.add_argument("--output", help="the run's folder; a rerun skips what is done in it")
    command.add_argument(
        "--output-format", choices=typing.get_args(config.OutputFormat), default="jsonl"
    )
    command.add_argument(
        "--jars",
        help=f"comma-separated Delta Lake jars for a delta table (default: ${sparkjars.ENV}, "
        f"else the image's {sparkjars.IMAGE_DIR}, else the cache `tiers dev up` fills)",
    )
    command.add_argument("--backend", metavar="PROVIDER=URL", help="e.g. openai-compatible=URL")
    command.add_argument("--endpoint", metavar="URL", help="a Tiers RealtimeEndpoint's /v1 URL")
    command.add_argument(
        "--model", default="gpt-4o-mini", help="--format openai: for bodies that name none"
    )
    command.add_argument("--id-field", default="id")
    command.add_argument("--prompt", help="template with {field} placeholders")
    command.add_argument("--route", choices=("chat", "completions", "embeddings"), default="chat")
    command.add_argument("--rows-per-request", type=int, default=1)
    command.add_argument("--max-in-flight", type=int, default=64)
    command.add_argument("--max-tokens", type=int, default=256)
    command.add_argument("--max-usd", type=decimal.Decimal, help="the run's budget in USD")
    command.add_argument("--stats-redis", help="redis://... where progress and stats go")
    command.add_argument("--job", default="local/batch", help="namespace/name for progress")
    command.add_argument("--run", help="the run's name for progress (default: local)")
    command.add_argument("--master", default="local[2]")
    command.add_argument("--partition-mb", type=float, default=2.0, help="input MB per task")


def job_settings(args: argparse.Namespace) -> config.BatchJobConfig:
    if args.config is not None:
        # A Job per run shares its BatchJob's config and names the run and its output itself.
        loaded = config.load(args.config)
        changes: dict[str, object] = {}
        if args.run is not None:
            changes["run"] = args.run
        if args.output is not None:
            changes["output"] = loaded.output.model_copy(update={"uri": args.output})
        return loaded.model_copy(update=changes)
    if (
        args.input is None
        or args.output is None
        or (args.backend is None) == (args.endpoint is None)
    ):
        raise ValueError("give --config, or --input --output and one of --backend or --endpoint")
    if args.format != "openai" and args.prompt is None:
        raise ValueError("--prompt is required unless --format is openai")
    target: providers.BackendConfig | modelcall.EndpointTarget = (
        providers.parse_backend_flag(args.backend, 0)
        if args.backend
        else modelcall.EndpointTarget(url=args.endpoint)
    )
    delta = "delta" in (args.format, args.output_format)
    jars = (jar for jar in (args.jars or "").split(",") if jar)
    return config.BatchJobConfig(
        job=args.job,
        run=args.run or "local",
        input=config.InputConfig(uri=args.input, format=args.format, id_field=args.id_field),
        output=config.OutputConfig(uri=args.output, format=args.output_format),
        model=modelcall.ModelCallConfig(
            target=target,
            model=args.model,
            prompt=args.prompt or "{body}",
            route=args.route,
            rows_per_request=args.rows_per_request,
            max_in_flight=args.max_in_flight,
            max_tokens=args.max_tokens,
        ),
        max_usd=args.max_usd,
        stats_redis_url=args.stats_redis,
        master=args.master,
        jars=(tuple(jars) or sparkjars.find()) if delta else (),
        partition_bytes=int(args.partition_mb * 1024 * 1024),
    )
