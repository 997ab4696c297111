"""The operator bench's baseline: a kopf operator that does nothing but stamp, on each object of
the three kinds, the condition the Tiers operator ends with and `observedGeneration` (kopf's
own overhead: its watches, its per-object workers, its annotations and one status patch).

Run by `bench/operator.py` as `kopf run --standalone --namespace NS bench/stamp_operator.py`.
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

# The condition each kind settles with in the bench: Ready for the long-running kinds, and for
# the BatchJobs (created suspended) Succeeded=Unknown, reason Suspended.
SETTLED = {
    "realtimeendpoints": ("Ready", "True", "Ready"),
    "streampipelines": ("Ready", "True", "Ready"),
    "batchjobs": ("Succeeded", "Unknown", "Suspended"),
}


def stamp(plural: str) -> Any:
    type_, status, reason = SETTLED[plural]

    def handler(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        generation = body.metadata.get("generation")
        patch.status["observedGeneration"] = generation
        patch.status["conditions"] = [
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": "stamped by the bench's baseline operator",
                "lastTransitionTime": now,
                "observedGeneration": generation,
            }
        ]

    handler.__name__ = handler.__qualname__ = f"stamp_{plural}"
    return handler


for _plural in SETTLED:
    _handler = stamp(_plural)
    kopf.on.resume("tiers.dev", "v1alpha1", _plural)(_handler)
    kopf.on.create("tiers.dev", "v1alpha1", _plural)(_handler)
    kopf.on.update("tiers.dev", "v1alpha1", _plural, field="spec")(_handler)
