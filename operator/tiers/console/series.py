"""Each resource's latency, throughput and cost over time, kept from its status.

The operator writes what the tiers publish (their Redis stats, summarized over a window) into
each object's status every re-check; the console's own watch (`recorder`) hands every version of
an object to `Rings.record`, which keeps one point per new observation (`point_of`, pure) in a
bounded ring per resource: at most `MAX_POINTS` and `MAX_AGE`. `save`/`load` keep the rings in a
file across restarts, so a page reload or a console restart still has history to chart.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import pathlib
import tempfile
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import pydantic

from tiers.api import kinds
from tiers.console import summaries

MAX_POINTS = 2880
MAX_AGE = datetime.timedelta(hours=24)
RANGES = {
    "15m": datetime.timedelta(minutes=15),
    "1h": datetime.timedelta(hours=1),
    "6h": datetime.timedelta(hours=6),
    "24h": datetime.timedelta(hours=24),
}

Key = tuple[str, str, str]
"""(plural, namespace, name)."""


class Point(summaries.Model):
    t: str
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    throughput_per_second: float | None
    cost_usd: str | None
    error_ratio: float | None


def key_of(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    plural = summaries.BY_KIND[obj["kind"]].plural
    return plural, str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def point_of(obj: Mapping[str, Any]) -> Point | None:
    """The observation in an object's status, timed when it was observed; None without one."""
    kind = summaries.BY_KIND[obj["kind"]]
    status = obj.get("status") or {}
    latency = _block(status, "latency")
    cost = _block(status, "cost")
    observed = summaries.parse_time(latency.get("observedAt")) or summaries.parse_time(
        cost.get("observedAt")
    )
    if observed is None:
        return None
    return Point(
        t=summaries.rfc3339(observed),
        p50_ms=_int(latency.get("p50Ms")),
        p95_ms=_int(latency.get("p95Ms")),
        p99_ms=_int(latency.get("p99Ms")),
        throughput_per_second=summaries.throughput(kind, status),
        cost_usd=_decimal_text(cost.get("totalUSD")),
        error_ratio=error_ratio(kind, status),
    )


def error_ratio(kind: kinds.Kind, status: Mapping[str, Any]) -> float | None:
    """Failed over attempted: requests, events (dead-lettered), records."""
    if kind is kinds.REALTIME_ENDPOINT:
        block = status.get("traffic") or {}
        failed, total = block.get("errors"), block.get("requests")
    elif kind is kinds.STREAM_PIPELINE:
        block = status.get("throughput") or {}
        failed, total = block.get("deadLettered"), block.get("events")
    else:
        block = status.get("progress") or {}
        failed, total = block.get("failed"), block.get("done")
    if failed is None or not total:
        return None if failed is None else 0.0
    return round(int(failed) / int(total), 4)


class Rings:
    """One bounded ring of points per resource."""

    def __init__(self, *, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self._rings: dict[Key, collections.deque[Point]] = {}
        self.dirty = False

    def record(self, obj: Mapping[str, Any]) -> bool:
        """Adds the object's observation unless it is the ring's last one; whether it did."""
        point = point_of(obj)
        if point is None:
            return False
        return self.add(key_of(obj), point)

    def add(self, key: Key, point: Point) -> bool:
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = collections.deque(maxlen=self.max_points)
        if ring and ring[-1].t >= point.t:
            return False
        ring.append(point)
        self.dirty = True
        return True

    def forget(self, key: Key) -> None:
        if self._rings.pop(key, None) is not None:
            self.dirty = True

    def points(self, key: Key, *, since: datetime.datetime) -> list[Point]:
        cutoff = summaries.rfc3339(since)
        return [point for point in self._rings.get(key, ()) if point.t >= cutoff]

    def prune(self, *, now: datetime.datetime) -> None:
        """Drops points older than `MAX_AGE`, and the rings left empty."""
        cutoff = summaries.rfc3339(now - MAX_AGE)
        for key in list(self._rings):
            ring = self._rings[key]
            while ring and ring[0].t < cutoff:
                ring.popleft()
                self.dirty = True
            if not ring:
                del self._rings[key]

    def save(self, path: pathlib.Path) -> None:
        """Writes every ring to `path` atomically (a crash leaves the previous file)."""
        document = {
            "/".join(key): [point.model_dump(by_alias=True) for point in ring]
            for key, ring in self._rings.items()
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as out:
            json.dump(document, out, separators=(",", ":"))
        os.replace(out.name, path)
        self.dirty = False

    def load(self, path: pathlib.Path) -> None:
        """Reads rings saved by `save`; a missing or unreadable file leaves them empty."""
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(document, dict):
            return
        for joined, points in document.items():
            parts = tuple(str(joined).split("/"))
            if len(parts) != 3 or not isinstance(points, list):
                continue
            for raw in points:
                try:
                    self.add((parts[0], parts[1], parts[2]), Point.model_validate(raw))
                except pydantic.ValidationError:
                    continue
        self.dirty = False


def _block(status: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    found = status.get(name)
    return found if isinstance(found, Mapping) else {}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _decimal_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return None
