"""The Tiers API (tiers.dev/v1alpha1): typed models of the three kinds, source of `crds/`."""

from tiers.api.batch import BatchJobSpec, BatchJobStatus
from tiers.api.common import Condition
from tiers.api.kinds import (
    ALL,
    API_VERSION,
    BATCH_JOB,
    GROUP,
    REALTIME_ENDPOINT,
    STREAM_PIPELINE,
    VERSION,
    Kind,
)
from tiers.api.realtime import RealtimeEndpointSpec, RealtimeEndpointStatus
from tiers.api.stream import StreamPipelineSpec, StreamPipelineStatus

__all__ = [
    "ALL",
    "API_VERSION",
    "BATCH_JOB",
    "GROUP",
    "REALTIME_ENDPOINT",
    "STREAM_PIPELINE",
    "VERSION",
    "BatchJobSpec",
    "BatchJobStatus",
    "Condition",
    "Kind",
    "RealtimeEndpointSpec",
    "RealtimeEndpointStatus",
    "StreamPipelineSpec",
    "StreamPipelineStatus",
]
