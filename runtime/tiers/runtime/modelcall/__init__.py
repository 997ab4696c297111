"""modelcall: the one async, batched model client that the stream and batch tiers share.

A `ModelCallConfig` names the target (a RealtimeEndpoint URL or a backend), the model and a
prompt template filled from each row. `ModelClient.score` calls the model for many rows at once
with bounded concurrency, retries and idempotency keys, and returns a `RowResult` per row, never
raising for a model error. Spark workers, which call synchronously, use `score_batch` and
`as_columns`:

    found = modelcall.score_batch(config_json, rows, keys)
    frame = pandas.DataFrame(modelcall.as_columns(found))
"""

from tiers.runtime.modelcall.blocking import client_for, close_all, score_batch, submit_batch
from tiers.runtime.modelcall.client import ModelClient
from tiers.runtime.modelcall.config import EndpointTarget, ModelCallConfig
from tiers.runtime.modelcall.results import COLUMNS, SPARK_DDL, RowResult, as_columns

__all__ = [
    "COLUMNS",
    "SPARK_DDL",
    "EndpointTarget",
    "ModelCallConfig",
    "ModelClient",
    "RowResult",
    "as_columns",
    "client_for",
    "close_all",
    "score_batch",
    "submit_batch",
]
