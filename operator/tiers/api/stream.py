"""StreamPipeline: Kafka topics and a Spark Structured Streaming job that scores each event."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from tiers.api import certificates, common, exposure


class Topic(common.Model):
    """A Kafka topic the operator creates and keeps in shape."""

    name: str = pydantic.Field(
        pattern=common.TOPIC_PATTERN,
        max_length=249,
        description="Topic name; cannot be changed once set.",
        json_schema_extra=common.validations(
            common.cel("self == oldSelf", "topic name is immutable", reason="FieldValueForbidden")
        ),
    )
    partitions: int = pydantic.Field(
        default=6,
        ge=1,
        le=10000,
        description="Partition count; it may grow but never shrink.",
        json_schema_extra=common.validations(
            common.cel(
                "self >= oldSelf",
                "partitions may grow but never shrink",
                reason="FieldValueForbidden",
            )
        ),
    )
    replication_factor: int = pydantic.Field(default=1, ge=1, le=32)
    config: dict[str, str] = pydantic.Field(
        default_factory=dict,
        max_length=64,
        description="Topic configs, e.g. retention.ms.",
    )


class Topics(common.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.output.name != self.input.name",
                "topics.output.name must differ from topics.input.name (the job would read its"
                " own results)",
                reason="FieldValueInvalid",
                field_path=".output.name",
            ),
            common.cel(
                "self.deadLetter.name != self.input.name"
                " && self.deadLetter.name != self.output.name",
                "topics.deadLetter.name must differ from topics.input.name and topics.output.name",
                reason="FieldValueInvalid",
                field_path=".deadLetter.name",
            ),
        )
    )

    input: Topic
    output: Topic
    dead_letter: Topic = pydantic.Field(description="Events that could not be scored, with reason.")


# One broker: a DNS name or IPv4 address, or an [IPv6] address, and a port from 1 to 65535.
PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
BROKER = rf"([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):{PORT}"


class Kafka(common.Model):
    """Where the brokers are."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.bootstrapServers) != has(self.bootstrapSecretRef)",
                "kafka needs exactly one of bootstrapServers or bootstrapSecretRef",
            )
        )
    )

    bootstrap_servers: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        pattern=f"^{BROKER}(,{BROKER})*$",
        description="host:port[,host:port...]",
        json_schema_extra=common.validations(
            common.cel(
                "!self.contains('://')",
                "bootstrapServers is host:port[,host:port...], not a URL: drop the scheme,"
                " e.g. kafka.kafka.svc:9092",
                reason="FieldValueInvalid",
            )
        ),
    )
    bootstrap_secret_ref: common.SecretKeyRef | None = None


class Trigger(common.Model):
    """How often Spark starts a micro-batch, and how much it reads in one."""

    interval_ms: int = pydantic.Field(default=500, ge=100, le=600000)
    max_offsets_per_trigger: int | None = pydantic.Field(default=None, ge=1, le=100_000_000)


class Checkpoint(common.Model):
    """Where Spark keeps offsets and state, so a restart resumes without loss."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.uri) != has(self.volumeSize)",
                "checkpoint needs exactly one of uri or volumeSize",
            )
        )
    )

    uri: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        pattern=r"^((s3a|gs|abfss|hdfs)://[^/\s]+(/\S*)?|file:///\S*)$",
        description="Checkpoint location on shared storage: a bucket or host, or file:///path.",
    )
    volume_size: str | None = pydantic.Field(
        default=None,
        pattern=r"^[1-9][0-9]*(Mi|Gi|Ti)$",
        max_length=16,
        description="Size of a PersistentVolumeClaim the operator creates, e.g. 1Gi.",
    )


StreamEngine = Literal["deployment", "spark-operator"]


class SparkResources(common.Model):
    image: str | None = pydantic.Field(
        default=None, min_length=1, max_length=512, pattern=common.IMAGE_PATTERN
    )
    cores: int = pydantic.Field(default=2, ge=1, le=256)
    memory: str = pydantic.Field(default="2Gi", pattern=common.MEMORY_PATTERN, max_length=16)


ORIGIN = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$"
"""A web page's origin as browsers send it: scheme, host and an optional port, no path."""


class Push(common.Model):
    """Who may call the push gateway (events in, results out to browsers)."""

    auth: common.Auth | None = pydantic.Field(
        default=None,
        description="Keys a caller must send (Authorization: Bearer, or the WebSocket"
        " subprotocol bearer.<key>); each key sees only its own events. Without it anyone who"
        " reaches the push gateway may post events and read every result.",
    )
    allowed_origins: list[Annotated[str, pydantic.Field(pattern=ORIGIN, max_length=2048)]] = (
        pydantic.Field(
            default_factory=list,
            max_length=32,
            description="Web pages (https://host[:port]) whose scripts may call the push gateway"
            " (CORS and the WebSocket Origin); requests from other pages are refused.",
            json_schema_extra={"x-kubernetes-list-type": "set"},
        )
    )
    expose: exposure.Expose | None = pydantic.Field(
        default=None,
        description="Reach the push gateway from outside the cluster (browsers) through an"
        " Ingress or a Gateway API HTTPRoute that the operator makes and owns.",
    )
    tls: certificates.TLS | None = pydantic.Field(
        default=None,
        description="Serve HTTPS inside the cluster (TLS 1.2+ only). Without it, plain HTTP.",
    )


class StreamPipelineSpec(common.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.engine != 'spark-operator' || !has(self.checkpoint.uri)"
                " || !self.checkpoint.uri.startsWith('file:')",
                "checkpoint.uri file:// is lost when the Spark Operator restarts the driver: with"
                " engine spark-operator use s3a://, gs://, abfss:// or hdfs://, or volumeSize",
                reason="FieldValueInvalid",
                field_path=".checkpoint.uri",
            )
        )
    )

    kafka: Kafka
    topics: Topics
    model: common.ModelCall
    engine: StreamEngine = pydantic.Field(
        default="deployment",
        description="deployment (spark-submit local[N] in a pod) or spark-operator; immutable.",
        json_schema_extra=common.validations(
            common.cel("self == oldSelf", "engine is immutable", reason="FieldValueForbidden")
        ),
    )
    trigger: Trigger = pydantic.Field(default_factory=Trigger)
    checkpoint: Checkpoint
    spark: SparkResources = pydantic.Field(default_factory=SparkResources)
    deletion_policy: common.DeletionPolicy = pydantic.Field(
        default="Retain", description="Retain keeps topics and checkpoints on delete; Delete drops."
    )
    suspend: bool = False
    push: Push = pydantic.Field(default_factory=Push)
    telemetry: common.Telemetry | None = pydantic.Field(
        default=None,
        description="Send a span per event's model call to an OpenTelemetry collector, in the"
        " trace of the input record's traceparent header, which the output record's headers"
        " carry on; without it, none are made and headers are not read.",
    )


class Throughput(common.Windowed):
    events_per_second: int = pydantic.Field(ge=0)
    events: int = pydantic.Field(ge=0)
    dead_lettered: int = pydantic.Field(ge=0)


class StreamCost(common.CostStatus):
    per_event_usd: common.DecimalUSD = pydantic.Field(alias="perEventUSD")


class OwnedTopic(common.Model):
    """A topic this pipeline created, by the id Kafka gave it."""

    name: str = pydantic.Field(min_length=1, max_length=249)
    id: str | None = pydantic.Field(
        default=None,
        min_length=1,
        max_length=64,
        description=(
            "Kafka's topic id; absent while the topic is being created (claimed before the"
            " request, so that an operator stopped before the answer still knows it made it)."
        ),
    )


class StreamPipelineStatus(common.Status):
    lag: int | None = pydantic.Field(default=None, ge=0, description="Input events not yet read.")
    push: common.Address | None = pydantic.Field(
        default=None,
        description="The push gateway's in-cluster URL, and with spec.push.tls the CA it is"
        " verified with.",
    )
    throughput: Throughput | None = None
    cost: StreamCost | None = None
    topics: list[OwnedTopic] | None = pydantic.Field(
        default=None,
        max_length=3,
        description=(
            "The topics this pipeline created (name and Kafka topic id): the only ones it grows,"
            " reconfigures or (deletionPolicy Delete) deletes. A topic that existed before, or"
            " was made again under its name by someone else, is used as it is."
        ),
    )
