"""An endpoint's spend in a calendar month: the Redis counter its budget is enforced with.

The gateways add to it (`gateway.budget`), the operator reads it into `status.budget`; this is
the one place its key and unit are written, so both sides read the same counter. One integer of
micro-USD per endpoint and UTC month: `tiers:budget:<endpoint>:<YYYY-MM>`.
"""

from __future__ import annotations

import decimal
import time

MICRO_USD = decimal.Decimal("0.000001")
KEY_TTL_S = 35 * 24 * 3600
"""Longer than any month, so a counter outlives its month and then goes by itself."""


def month_of(now_s: float) -> str:
    """The UTC calendar month of `now_s`, "2026-11": the period a budget counts over."""
    moment = time.gmtime(now_s)
    return f"{moment.tm_year:04d}-{moment.tm_mon:02d}"


def month_key(endpoint: str, now_s: float) -> str:
    """The Redis key of the endpoint's spend in the UTC calendar month of `now_s`."""
    return f"tiers:budget:{endpoint}:{month_of(now_s)}"


def whole_micro_usd(usd: decimal.Decimal) -> tuple[int, decimal.Decimal]:
    """Splits an amount into whole micro-USD (for the counter) and the remainder kept locally."""
    micro = int(usd / MICRO_USD)
    return micro, usd - micro * MICRO_USD
