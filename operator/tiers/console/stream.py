"""A StreamPipeline's live view through the console: its push gateway's results (SSE), events
sent to it (samples, or one poison event that goes to the dead-letter topic) and the latest
dead letters read from Kafka. The caller must be able to read the pipeline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Annotated, Any

import fastapi
import pydantic

from tiers.console import deadletters, errors, objects, resources, trust, upstream
from tiers.operator.manifests import labels, serving_tls, stream_children

router = fastapi.APIRouter(prefix="/api/v1/stream")

MAX_EVENTS = 500


def push_gateway(request: fastapi.Request, obj: dict[str, Any]) -> upstream.Server:
    """The pipeline's push gateway (its Service, as the operator names it) as this console
    reaches and verifies it (https with `spec.push.tls`: against the CA the pipeline
    publishes)."""
    metadata = obj["metadata"]
    tls = ((obj.get("spec") or {}).get("push") or {}).get("tls")
    in_cluster = stream_children.PUSH.url(
        labels.Ref(metadata["name"], metadata["namespace"]),
        scheme="http" if tls is None else serving_tls.HTTPS,
    )
    return trust.server(request, obj, "push", in_cluster)


async def pipeline(request: fastapi.Request, namespace: str, name: str) -> dict[str, Any]:
    return await objects.get(resources.caller(request).client, "streampipelines", namespace, name)


@router.get("/{namespace}/{name}/live")
async def live(request: fastapi.Request, namespace: str, name: str) -> fastapi.Response:
    push = push_gateway(request, await pipeline(request, namespace, name))
    started = time.monotonic()
    response = await upstream.open_stream(
        "GET",
        push,
        "/events/results",
        headers={**upstream.headers_for(request), "accept": "text/event-stream"},
        timeout=upstream.STREAM_TIMEOUT,
    )
    return upstream.passthrough(response, started=started, extra={"x-accel-buffering": "no"})


class Events(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = pydantic.Field(default_factory=list, max_length=MAX_EVENTS)
    poison: bool = False


@router.post("/{namespace}/{name}/events")
async def send(request: fastapi.Request, namespace: str, name: str, body: Events) -> dict[str, int]:
    push = push_gateway(request, await pipeline(request, namespace, name))
    sent = list(body.events)
    if body.poison:
        # A JSON object without the fields a prompt reads: never scored, dead-lettered with
        # the reason invalid_event.
        sent.append({"id": f"poison-{uuid.uuid4().hex[:8]}", "poison": "no field a prompt reads"})
    if not sent:
        raise errors.ConsoleError(
            422, "Invalid", "events: send at least one event, or poison: true"
        )
    response = await upstream.open_stream(
        "POST",
        push,
        "/events",
        headers=upstream.headers_for(request, "application/json"),
        content=json.dumps(sent).encode(),
    )
    answer = await response.aread()
    await response.aclose()
    if response.status_code >= 300:
        said = answer[:300].decode(errors="replace")
        raise errors.ConsoleError(
            response.status_code if response.status_code < 500 else 502,
            "PushGatewayRefused",
            f"the push gateway answered {response.status_code}: {said}",
        )
    return {"sent": len(sent)}


@router.get("/{namespace}/{name}/deadletters")
async def dead_letters(
    request: fastapi.Request,
    namespace: str,
    name: str,
    limit: Annotated[int, fastapi.Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    obj = await pipeline(request, namespace, name)
    spec = obj.get("spec") or {}
    bootstrap = (spec.get("kafka") or {}).get("bootstrapServers")
    topic = ((spec.get("topics") or {}).get("deadLetter") or {}).get("name")
    if not bootstrap or not topic:
        raise errors.ConsoleError(
            409, "NotReadable",
            f"StreamPipeline {name!r}: the console reads dead letters only from"
            " spec.kafka.bootstrapServers (not a Secret's) and spec.topics.deadLetter.name",
        )  # fmt: skip
    records = await asyncio.to_thread(deadletters.latest, bootstrap, topic, limit=limit)
    return {"items": records}
