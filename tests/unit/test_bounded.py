"""Caches keyed by what specs name drop their oldest entry past their bound."""

from __future__ import annotations

from tiers.operator import bounded


def test_the_oldest_entry_goes_first_and_is_handed_back() -> None:
    cache: dict[str, int] = {}
    assert bounded.keep(cache, "a", 1, limit=2) is None
    assert bounded.keep(cache, "b", 2, limit=2) is None
    assert bounded.keep(cache, "a", 3, limit=2) is None  # a key kept already is replaced in place
    assert bounded.keep(cache, "c", 4, limit=2) == 3
    assert cache == {"b": 2, "c": 4}
