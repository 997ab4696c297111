"""`python -m tiers.runtime.mockllm`: serve the mock backend from the command line."""

import argparse
import sys

from tiers.runtime.mockllm import config, server


def parse_config(argv: list[str]) -> tuple[config.MockConfig, str]:
    p = argparse.ArgumentParser(
        prog="python -m tiers.runtime.mockllm",
        description="An OpenAI-compatible test backend (chat, completions, embeddings, SSE).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001, help="0 picks a free port (default 9001)")
    p.add_argument("--api-key", help="require this key (Bearer, or api-key on Azure paths)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="fixed latency per reply")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="plus uniform(0, jitter)")
    p.add_argument("--p50-ms", type=float, default=0.0, help="plus a lognormal with this median")
    p.add_argument("--p95-ms", type=float, default=0.0, help="... and this 95th percentile")
    p.add_argument("--chunk-delay-ms", type=float, default=0.0, help="between stream chunks")
    p.add_argument("--fail-rate-429", type=float, default=0.0, help="share of requests (0..1)")
    p.add_argument("--fail-rate-500", type=float, default=0.0, help="share of requests (0..1)")
    p.add_argument("--timeout-rate", type=float, default=0.0, help="share of requests held")
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds, sent with 429s")
    p.add_argument("--timeout-s", type=float, default=600.0, help="how long a timeout holds")
    p.add_argument("--embedding-dim", type=int, default=256)
    p.add_argument("--max-reply-tokens", type=int, default=256, help="without max_tokens")
    p.add_argument("--model", action="append", dest="models", help="listed by /v1/models")
    p.add_argument("--seed", type=int, help="replay the same latency and fault draws")
    p.add_argument(
        "--prompt-cache", action="store_true", help="report repeated prefixes as cached tokens"
    )
    p.add_argument(
        "--reasoning-tokens", type=int, default=0, help="hidden reasoning tokens per choice"
    )
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    try:
        cfg = config.MockConfig(
            host=a.host,
            port=a.port,
            api_key=a.api_key,
            latency=config.Latency(
                fixed_ms=a.latency_ms,
                jitter_ms=a.jitter_ms,
                p50_ms=a.p50_ms,
                p95_ms=a.p95_ms,
                chunk_delay_ms=a.chunk_delay_ms,
            ),
            faults=config.Faults(
                fail_rate_429=a.fail_rate_429,
                fail_rate_500=a.fail_rate_500,
                timeout_rate=a.timeout_rate,
                retry_after_s=a.retry_after,
                timeout_s=a.timeout_s,
            ),
            embedding_dim=a.embedding_dim,
            max_reply_tokens=a.max_reply_tokens,
            models=tuple(a.models) if a.models else config.DEFAULT_MODELS,
            seed=a.seed,
            prompt_cache=a.prompt_cache,
            reasoning_tokens=a.reasoning_tokens,
        )
    except ValueError as e:
        p.error(str(e))
    return cfg, a.log_level


def main(argv: list[str] | None = None) -> None:
    cfg, log_level = parse_config(sys.argv[1:] if argv is None else argv)
    server.run(cfg, log_level=log_level)


if __name__ == "__main__":
    main()
