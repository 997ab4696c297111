"""The three kinds of the API: names, schemas and printer columns, as the CRDs declare them."""

from __future__ import annotations

import dataclasses

import pydantic

from tiers.api import batch, realtime, stream

GROUP = "tiers.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "tiers"

READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_name: str
    spec: type[pydantic.BaseModel]
    status: type[pydantic.BaseModel]
    columns: tuple[PrinterColumn, ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")

REALTIME_ENDPOINT = Kind(
    kind="RealtimeEndpoint",
    plural="realtimeendpoints",
    short_name="rte",
    spec=realtime.RealtimeEndpointSpec,
    status=realtime.RealtimeEndpointStatus,
    columns=(
        PrinterColumn("Ready", READY),
        PrinterColumn("URL", ".status.url"),
        PrinterColumn("P95", ".status.latency.p95Ms", "integer"),
        PrinterColumn("Cost/req", ".status.cost.perRequestUSD"),
        PrinterColumn("In-cluster", ".status.address.url", priority=1),
        PrinterColumn("Model", ".spec.model", priority=1),
        PrinterColumn("Spent/mo", ".status.budget.monthUSD", priority=1),
        AGE,
    ),
)

STREAM_PIPELINE = Kind(
    kind="StreamPipeline",
    plural="streampipelines",
    short_name="spipe",
    spec=stream.StreamPipelineSpec,
    status=stream.StreamPipelineStatus,
    columns=(
        PrinterColumn("Ready", READY),
        PrinterColumn("Lag", ".status.lag", "integer"),
        PrinterColumn("Events/s", ".status.throughput.eventsPerSecond", "integer"),
        PrinterColumn("P95", ".status.latency.p95Ms", "integer"),
        PrinterColumn("Cost/event", ".status.cost.perEventUSD"),
        PrinterColumn("Input", ".spec.topics.input.name", priority=1),
        AGE,
    ),
)

BATCH_JOB = Kind(
    kind="BatchJob",
    plural="batchjobs",
    short_name="bjob",
    spec=batch.BatchJobSpec,
    status=batch.BatchJobStatus,
    columns=(
        PrinterColumn("Succeeded", '.status.conditions[?(@.type=="Succeeded")].status'),
        PrinterColumn("State", ".status.state"),
        PrinterColumn("Progress", ".status.progress.percent", "integer"),
        PrinterColumn("Cost", ".status.cost.totalUSD"),
        PrinterColumn("Engine", ".spec.engine"),
        PrinterColumn("Schedule", ".spec.schedule", priority=1),
        PrinterColumn("Next", ".status.nextRun", priority=1),
        PrinterColumn("Records/s", ".status.progress.recordsPerSecond", "integer", priority=1),
        AGE,
    ),
)

ALL: tuple[Kind, ...] = (REALTIME_ENDPOINT, STREAM_PIPELINE, BATCH_JOB)
