"""The push gateway's doors: a real push gateway process on the dev Kafka, called the way a
script, a browser page and an attacker would. Keys are required, pages must be allowed, bodies
are bounded, and no client reads or takes another's events."""

from __future__ import annotations

import datetime
import json
import pathlib
import secrets
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
import websockets.exceptions
import websockets.sync.client
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import Collector, Processes, wait_for

from tiers import devenv
from tiers.operator.manifests import self_signed
from tiers.runtime import apikeys

ALLOWED = "https://console.example"
KEY_A, KEY_B = "sk-push-a", "sk-push-b"


def tenant(key: str) -> str:
    return apikeys.hash_key(key)[:16]


@pytest.fixture
def topics(dev_cluster: devenv.DevCluster) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"push-{role}-{suffix}" for role in ("in", "out")}
    admin = AdminClient({"bootstrap.servers": dev_cluster.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(n, num_partitions=1) for n in names.values()]).values():  # fmt: skip
        future.result(10)
    return names


@pytest.fixture
def push(
    services: Processes,
    dev_cluster: devenv.DevCluster,
    topics: dict[str, str],
    tmp_path: pathlib.Path,
) -> str:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "a").write_text(KEY_A + "\n")
    (keys / "b").write_text(KEY_B + "\n")
    return services.start(
        "push", "tiers.runtime.stream", "push", "--bootstrap", dev_cluster.kafka_bootstrap,
        "--input", topics["in"], "--output", topics["out"], "--api-keys-dir", str(keys),
        "--allowed-origin", ALLOWED,
    )  # fmt: skip


def call(
    url: str, *, method: str = "POST", body: bytes = b"[]", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_callers_without_a_key_pages_not_allowed_and_big_bodies_are_refused(push: str) -> None:
    events = push + "/events"
    assert call(events)[0] == 401
    assert call(events, headers=bearer("sk-wrong"))[0] == 401
    assert call(push + "/events/results", method="GET")[0] == 401
    assert call(events, headers=bearer(KEY_A))[0] == 202
    evil = {**bearer(KEY_A), "origin": "https://evil.example"}
    assert call(events, headers=evil)[0] == 403, "a cross-site page cannot post"
    assert call(events, method="OPTIONS", headers={"origin": "https://evil.example"})[0] == 403
    status, headers, _ = call(events, method="OPTIONS", headers={"origin": ALLOWED})
    assert status == 204 and headers["access-control-allow-origin"] == ALLOWED
    assert {"authorization", "traceparent"} <= set(
        headers["access-control-allow-headers"].split(", ")
    )
    status, headers, _ = call(events, headers={**bearer(KEY_A), "origin": ALLOWED})
    assert status == 202 and headers["access-control-allow-origin"] == ALLOWED
    plain = {**bearer(KEY_A), "content-type": "text/plain"}
    assert call(events, body=b'{"id": "x"}', headers=plain)[0] == 415
    huge = json.dumps([{"text": "x" * 1000}] * 2000).encode()
    assert call(events, body=huge, headers=bearer(KEY_A))[0] == 413
    many = json.dumps([{}] * 1001).encode()
    assert call(events, body=many, headers=bearer(KEY_A))[0] == 413
    assert call(events, body=b'{"id": {"a": 1}}', headers=bearer(KEY_A))[0] == 400


def test_a_websocket_needs_a_key_and_an_allowed_page(push: str) -> None:
    url = push.replace("http://", "ws://") + "/events/ws"
    for options in (
        {},
        {"subprotocols": ["tiers", "bearer.sk-wrong"]},
        {"subprotocols": ["tiers", f"bearer.{KEY_A}"], "origin": "https://evil.example"},
    ):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            websockets.sync.client.connect(url, open_timeout=10, **options).close()  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
    with websockets.sync.client.connect(
        url,
        subprotocols=["tiers", f"bearer.{KEY_A}"],
        origin=ALLOWED,
        open_timeout=10,  # type: ignore[list-item, arg-type]
    ) as socket:
        assert socket.subprotocol == "tiers"
    with websockets.sync.client.connect(url, additional_headers=bearer(KEY_B), open_timeout=10):
        pass


def subscribe(url: str, key: str, received: list[dict[str, Any]], ready: threading.Event) -> None:
    request = urllib.request.Request(url, headers=bearer(key))
    with urllib.request.urlopen(request, timeout=60) as stream:
        for line in stream:
            ready.set()
            if line.startswith(b"data: "):
                received.append(json.loads(line[6:]))


def test_each_key_sees_only_its_own_events_and_cannot_take_anothers_id(
    push: str, topics: dict[str, str], dev_cluster: devenv.DevCluster
) -> None:
    _, _, accepted_a = call(push + "/events", body=b'{"id": "order-1"}', headers=bearer(KEY_A))
    _, _, accepted_b = call(push + "/events", body=b'{"id": "order-1"}', headers=bearer(KEY_B))
    key_a, key_b = json.loads(accepted_a)["keys"][0], json.loads(accepted_b)["keys"][0]
    assert (key_a, key_b) == (f"{tenant(KEY_A)}:order-1", f"{tenant(KEY_B)}:order-1")
    subscriptions = {
        "a-own": (f"{push}/events/results?key=order-1", KEY_A),
        "a-tries-b": (f"{push}/events/results?key={key_b}", KEY_A),
        "b-all": (f"{push}/events/results", KEY_B),
    }
    received: dict[str, list[dict[str, Any]]] = {name: [] for name in subscriptions}
    for name, (url, key) in subscriptions.items():
        ready = threading.Event()
        threading.Thread(target=subscribe, args=(url, key, received[name], ready), daemon=True).start()  # fmt: skip
        assert ready.wait(30), f"{name}: the subscription was not confirmed"
    producer = Producer({"bootstrap.servers": dev_cluster.kafka_bootstrap})
    for key in (key_a, key_b, "order-1"):  # the last: a record of no tenant
        producer.produce(topics["out"], key=key, value=json.dumps({"key": key}).encode())
    producer.flush(10)
    wait_for(lambda: received["a-own"] and received["b-all"], timeout_s=30, what="both results")
    assert [r["key"] for r in received["a-own"]] == [key_a]
    assert [r["key"] for r in received["b-all"]] == [key_b]
    assert received["a-tries-b"] == [], "a key never reads another key's results"


def test_a_callers_trace_context_goes_into_the_headers_of_each_event_it_posts(
    push: str, topics: dict[str, str], dev_cluster: devenv.DevCluster
) -> None:
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    inputs = Collector(dev_cluster.kafka_bootstrap, topics["in"])
    try:
        traced = {**bearer(KEY_A), "traceparent": traceparent, "tracestate": "vendor=1"}
        assert (
            call(push + "/events", body=b'[{"id": "t1"}, {"id": "t2"}]', headers=traced)[0] == 202
        )
        malformed = {**bearer(KEY_A), "traceparent": "00-not-a-context"}
        assert call(push + "/events", body=b'{"id": "plain"}', headers=malformed)[0] == 202
        wait_for(lambda: len(inputs.records) >= 3, timeout_s=30, what="the three events")
    finally:
        inputs.close()
    by_id = {r["id"]: h for r, h in zip(inputs.records, inputs.headers, strict=True)}
    assert (
        by_id["t1"]
        == by_id["t2"]
        == {"traceparent": traceparent.encode(), "tracestate": b"vendor=1"}
    )
    assert by_id["plain"] == {}, "a malformed context is not passed on"


def test_the_push_gateway_serves_https_that_clients_verify(
    services: Processes,
    dev_cluster: devenv.DevCluster,
    topics: dict[str, str],
    tmp_path: pathlib.Path,
) -> None:
    pair = self_signed.issue(["localhost"], now=datetime.datetime.now(datetime.UTC))
    for key, value in pair.items():
        (tmp_path / key).write_text(value)
    url = services.start(
        "push", "tiers.runtime.stream", "push", "--bootstrap", dev_cluster.kafka_bootstrap,
        "--input", topics["in"], "--output", topics["out"],
        "--tls-cert-file", str(tmp_path / "tls.crt"), "--tls-key-file", str(tmp_path / "tls.key"),
        tls_ca=tmp_path / "ca.crt",
    )  # fmt: skip
    verified = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    request = urllib.request.Request(url + "/events", data=b'{"id": "tls-1"}', method="POST",
                                     headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10, context=verified) as response:
        assert response.status == 202
    other = self_signed.issue(["localhost"], now=datetime.datetime.now(datetime.UTC))
    (tmp_path / "other-ca.crt").write_text(other["ca.crt"])
    stranger = ssl.create_default_context(cafile=tmp_path / "other-ca.crt")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url + "/healthz", timeout=10, context=stranger)
