"""The stream tier: a Spark Structured Streaming job that scores every Kafka event with the
shared model client, and a push gateway that takes events over HTTP and pushes results to
browsers. The operator renders a `StreamJobConfig` for both."""

from tiers.runtime.stream.config import StreamJobConfig

__all__ = ["StreamJobConfig"]
