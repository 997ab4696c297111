"""modelcall: the one async, batched model client that the stream and batch tiers share.

A `ModelCallConfig` names the target (a RealtimeEndpoint URL or a backend), the model and a
prompt template filled from each row. `ModelClient.score` calls the model for many rows at once
with bounded concurrency, retries and idempotency keys, and returns a `RowResult` per row, never
raising for a model error. Spark workers, which call synchronously, use `score_batch` and
`as_columns`:

    found = modelcall.score_batch(config_json, rows, keys)
    frame = pandas.DataFrame(modelcall.as_columns(found))

A caller with request bodies of its own (an OpenAI Batch API file's) sends them as they are with
`ModelClient.send_raw`, or `send_raw_batch` / `submit_raw_batch` from a Spark worker, and gets a
`RawReply` per request: status, body, request id, tokens and cost (`raw`).

The config and the results load at once; the client and its facade (with the HTTP client under
them) load on first use of `ModelClient`, `score_batch` and the rest. The operator renders
`config.ModelCallConfig` and imports `tiers.runtime.modelcall.config` only, which runs this
package's `__init__`: it must not load a client for that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tiers.runtime.modelcall.config import EndpointTarget, ModelCallConfig
from tiers.runtime.modelcall.results import COLUMNS, SPARK_DDL, RowResult, as_columns

if TYPE_CHECKING:
    from tiers.runtime.modelcall.blocking import (
        client_for,
        close_all,
        event_loop,
        score_batch,
        send_raw_batch,
        submit_batch,
        submit_raw_batch,
    )
    from tiers.runtime.modelcall.client import Finished, ModelClient
    from tiers.runtime.modelcall.raw import RawReply, RawRequest

__all__ = [
    "COLUMNS",
    "SPARK_DDL",
    "EndpointTarget",
    "Finished",
    "ModelCallConfig",
    "ModelClient",
    "RawReply",
    "RawRequest",
    "RowResult",
    "as_columns",
    "client_for",
    "close_all",
    "event_loop",
    "score_batch",
    "send_raw_batch",
    "submit_batch",
    "submit_raw_batch",
]

_LOADED_ON_USE = {
    "Finished": "client",
    "ModelClient": "client",
    "RawReply": "raw",
    "RawRequest": "raw",
    "client_for": "blocking",
    "close_all": "blocking",
    "event_loop": "blocking",
    "score_batch": "blocking",
    "send_raw_batch": "blocking",
    "submit_batch": "blocking",
    "submit_raw_batch": "blocking",
}


def __getattr__(name: str) -> Any:
    """Loads the client's modules when one of their names is first asked for (PEP 562)."""
    module = _LOADED_ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
