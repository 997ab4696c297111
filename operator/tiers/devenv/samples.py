"""Tiers objects for tests and benchmarks: a RealtimeEndpoint, a StreamPipeline and a BatchJob
with everything a test does not look at filled in, so that a test names only what it is about.

    kubectl.apply(json.dumps(samples.realtime_endpoint("chat", replicas=2)))

Keyword arguments are spec fields and replace the defaults. Model backends point at
`UNREACHABLE_URL` unless told otherwise: the operator never calls a model, so for what it
reconciles any URL does.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "tiers.dev/v1alpha1"
UNREACHABLE_URL = "http://127.0.0.1:9/v1"
"""The discard port on loopback: nothing answers there."""
MODEL = "gpt-4o-mini"
TOPIC_ROLES = {"in": "input", "out": "output", "dlq": "deadLetter"}


def backend(
    name: str = "mock", *, base_url: str = UNREACHABLE_URL, **fields: Any
) -> dict[str, Any]:
    """An OpenAI-compatible backend serving `MODEL`."""
    return {
        "name": name, "provider": "openai-compatible", "baseURL": base_url, "model": MODEL,
        **fields,
    }  # fmt: skip


def realtime_endpoint(
    name: str = "chat", *, base_url: str = UNREACHABLE_URL, **spec: Any
) -> dict[str, Any]:
    """A RealtimeEndpoint of one backend ("primary") at `base_url`."""
    return _object("RealtimeEndpoint", name, {
        "model": MODEL, "backends": [backend("primary", base_url=base_url)], **spec,
    })  # fmt: skip


def topic_names(prefix: str = "", suffix: str = "") -> dict[str, str]:
    """A pipeline's topic names by role (`in`, `out`, `dlq`): `{prefix}in{suffix}`..."""
    return {role: f"{prefix}{role}{suffix}" for role in TOPIC_ROLES}


def stream_pipeline(
    name: str, *, bootstrap: str, topics: dict[str, str], partitions: int | None = 1, **spec: Any
) -> dict[str, Any]:
    """A StreamPipeline reading and writing `topics` (see `topic_names`), each of `partitions`
    (None: the operator's default), scoring with a backend at `UNREACHABLE_URL`."""
    sizes = {} if partitions is None else {"partitions": partitions}
    return _object("StreamPipeline", name, {
        "kafka": {"bootstrapServers": bootstrap},
        "topics": {field: {"name": topics[role], **sizes} for role, field in TOPIC_ROLES.items()},
        "model": {"backend": backend(), "prompt": "Summarize: {text}"},
        "checkpoint": {"volumeSize": "1Gi"},
        **spec,
    })  # fmt: skip


def batch_job(name: str, *, input_uri: str, output_uri: str, **spec: Any) -> dict[str, Any]:
    """A BatchJob scoring JSONL at `input_uri` into `output_uri` with a backend at
    `UNREACHABLE_URL` (`engine`, `databricks`, `suspend`... come in `spec`)."""
    return _object("BatchJob", name, {
        "input": {"uri": input_uri},
        "output": {"uri": output_uri, "format": "jsonl"},
        "model": {"backend": backend(), "prompt": "Classify this ticket: {text}"},
        **spec,
    })  # fmt: skip


def _object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
