"""Counts of requests received, per endpoint and per outcome, and the tokens billed, for tests
to assert on.

Outcomes are the reply's status code as a string ("200", "429", ...) or "timeout" for a request
that the fault injector held. The W3C `traceparent` of the last requests that sent one is kept,
so a test can see the trace context a caller passed on. `GET /_mock/stats` returns `snapshot()`.
"""

import collections
from typing import Any

from tiers.runtime.mockllm import billing

TRACEPARENTS_KEPT = 256


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._requests: collections.Counter[str] = collections.Counter()
        self._outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.bill = billing.Bill()
        self.traceparents: collections.deque[str] = collections.deque(maxlen=TRACEPARENTS_KEPT)

    def request(self, endpoint: str) -> None:
        """Counted on arrival, so a request held by a timeout fault already shows."""
        self._requests[endpoint] += 1

    def outcome(self, endpoint: str, outcome: str) -> None:
        self._outcomes[endpoint, outcome] += 1

    def snapshot(self) -> dict[str, Any]:
        by_endpoint: dict[str, dict[str, int]] = collections.defaultdict(dict)
        outcomes: collections.Counter[str] = collections.Counter()
        for (endpoint, outcome), count in sorted(self._outcomes.items()):
            by_endpoint[endpoint][outcome] = count
            outcomes[outcome] += count
        return {
            "total": sum(self._requests.values()),
            "requests": dict(sorted(self._requests.items())),
            "outcomes": dict(sorted(outcomes.items())),
            "by_endpoint": dict(by_endpoint),
            "billed": self.bill.snapshot(),
            "traceparents": list(self.traceparents),
        }
