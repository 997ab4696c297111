"""Caches keyed by what specs name drop their oldest entry past their bound (Kafka's clients too)."""

from __future__ import annotations

import sys
import threading

import pytest
from confluent_kafka import KafkaException

from tiers.operator import bounded, kafka_admin


def test_the_oldest_entry_goes_first_and_is_handed_back() -> None:
    cache: dict[str, int] = {}
    assert bounded.keep(cache, "a", 1, limit=2) is None
    assert bounded.keep(cache, "b", 2, limit=2) is None
    assert bounded.keep(cache, "a", 3, limit=2) is None  # a key kept already is replaced in place
    assert bounded.keep(cache, "c", 4, limit=2) == 3
    assert cache == {"b": 2, "c": 4}


def test_kafka_clients_are_kept_for_the_brokers_used_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap servers come from specs: past `KEPT` the client used longest ago is dropped,
    and one a call still holds keeps working (librdkafka's handle goes with its last reference)."""
    monkeypatch.setattr(kafka_admin, "KEPT", 2)
    monkeypatch.setattr(kafka_admin, "_admins", {})
    first = kafka_admin._admin("127.0.0.1:1")
    kafka_admin._admin("127.0.0.1:2")
    assert kafka_admin._admin("127.0.0.1:1") is first, "a client in use is reused"
    kafka_admin._admin("127.0.0.1:3")
    assert list(kafka_admin._admins) == ["127.0.0.1:1", "127.0.0.1:3"]
    dropped = kafka_admin._admin("127.0.0.1:4")  # drops 127.0.0.1:1 while `first` is held
    assert list(kafka_admin._admins) == ["127.0.0.1:3", "127.0.0.1:4"]
    with pytest.raises(KafkaException):  # not closed: it still asks (nothing listens there)
        first.list_topics(timeout=0.2)
    assert dropped is not first


def test_threads_sharing_a_cache_never_break_it_nor_pass_its_bound() -> None:
    """Databricks' and Azure's clients are kept from worker threads: `keep` and `drop` of one
    cache from many threads at once never fail mid-eviction nor leave more than `limit`."""
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    cache: dict[int, int] = {}
    failures: list[BaseException] = []
    sizes: list[int] = []
    start = threading.Barrier(8)

    def churn(offset: int) -> None:
        try:
            start.wait()
            for i in range(3000):
                bounded.keep(cache, offset * 10000 + i, i, limit=4)
                sizes.append(len(cache))
                if i % 3 == 0:
                    bounded.drop(cache, offset * 10000 + i - 1)
        except BaseException as error:  # collected for the assertion below
            failures.append(error)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(switch)
    assert not failures
    assert max(sizes) <= 4 and len(cache) <= 4
