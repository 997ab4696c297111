"""The completion notice against a real HTTP server on 127.0.0.1: delivery, retries and their
backoff, what is not retried, bounded waits and reads, the signature a receiver checks, the
payload's exact shape, and the Event's text.

Each test scripts the server's replies; `sleep` is injected, so backoff costs no time. The
server's hanging and dripping replies end when the test's server is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import decimal
import http.server
import ipaddress
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Rebinding

from tiers.operator import egress, notify

SECRET = b"webhook-secret"
NOTICE = notify.Notice(
    name="nightly",
    namespace="ml",
    run="nightly-29453770",
    state="Succeeded",
    records=1000,
    failed=3,
    cost_usd=decimal.Decimal("0.0015"),
    duration_seconds=125,
    output_uri="s3a://bucket/out/",
)
HANG = "hang"
DRIP = "drip"
FLOOD = "flood"


@dataclasses.dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b"ok"


@dataclasses.dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Webhook(http.server.ThreadingHTTPServer):
    """A receiver that answers from a script, one entry per request (the last one repeats)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[Reply | str] = [Reply()]
        self.received: list[Received] = []
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/batch"

    def next_reply(self) -> Reply | str:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(Received("POST", self.path, dict(self.headers), body))
        reply = self.server.next_reply()
        if reply == HANG:
            self.server.stopped.wait()
            return
        if reply in (DRIP, FLOOD):
            self.send_response(500)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hung up
                while not self.server.stopped.wait(0.01 if reply == DRIP else 0):
                    self.wfile.write(b"x" if reply == DRIP else b"e" * 65536)
                    self.wfile.flush()
            return
        assert isinstance(reply, Reply)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.stopped.set()
    server.shutdown()
    server.server_close()


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
"""The test receivers listen on loopback, which the operator posts to only when allowed."""


def deliver(url: str, **options: Any) -> tuple[notify.DeliveryResult, Sleeps]:
    sleeps = Sleeps()
    options = {
        "secret": None, "sleep": sleeps, "rng": random.Random(1), "allowed": LOOPBACK, **options,
    }  # fmt: skip
    return asyncio.run(notify.deliver(url, options.pop("notice", NOTICE), **options)), sleeps


def test_a_notice_is_delivered_on_the_first_try(webhook: Webhook) -> None:
    result, sleeps = deliver(webhook.url)
    assert result == notify.DeliveryResult(delivered=True, attempts=1, last_error=None)
    assert sleeps == []
    [request] = webhook.received
    assert (request.method, request.path) == ("POST", "/hooks/batch")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Tiers-Delivery"] == "ml/nightly/nightly-29453770"
    assert "X-Tiers-Signature" not in request.headers


def test_the_payload_has_exactly_the_documented_fields(webhook: Webhook) -> None:
    deliver(webhook.url)
    payload = json.loads(webhook.received[0].body)
    assert payload == {
        "name": "nightly",
        "namespace": "ml",
        "run": "nightly-29453770",
        "state": "Succeeded",
        "records": 1000,
        "failed": 3,
        "costUSD": "0.001500",
        "durationSeconds": 125,
        "outputURI": "s3a://bucket/out/",
    }
    assert list(payload) == list(NOTICE.to_wire())
    assert webhook.received[0].body == NOTICE.to_json()


def test_two_503s_then_200_is_delivered_on_the_third_attempt_after_the_asked_wait(
    webhook: Webhook,
) -> None:
    webhook.script = [Reply(503, {"Retry-After": "7"}), Reply(503), Reply(200)]
    result, sleeps = deliver(webhook.url)
    assert (result.delivered, result.attempts, result.last_error) == (True, 3, None)
    assert sleeps[0] == 7.0  # as the server asked
    assert 0 <= sleeps[1] <= 2.0  # full jitter up to initial * 2
    assert len(webhook.received) == 3


def test_every_retry_carries_the_same_delivery_id_so_receivers_can_deduplicate(
    webhook: Webhook,
) -> None:
    webhook.script = [Reply(500), Reply(200)]
    deliver(webhook.url)
    assert {r.headers["X-Tiers-Delivery"] for r in webhook.received} == {
        "ml/nightly/nightly-29453770"
    }
    assert webhook.received[0].body == webhook.received[1].body


def test_a_retry_after_longer_than_the_backoff_cap_waits_only_the_cap(webhook: Webhook) -> None:
    webhook.script = [Reply(429, {"Retry-After": "3600"}), Reply(200)]
    result, sleeps = deliver(webhook.url, max_backoff_s=30.0)
    assert (result.delivered, sleeps) == (True, [30.0])


def test_a_retry_after_date_is_read_against_the_injected_clock(webhook: Webhook) -> None:
    webhook.script = [Reply(503, {"Retry-After": "Wed, 21 Oct 2026 07:28:12 GMT"}), Reply(200)]
    now = 1792567682.0  # 2026-10-21 07:28:02 UTC
    result, sleeps = deliver(webhook.url, clock=lambda: now)
    assert (result.delivered, sleeps) == (True, [10.0])


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retried_until_the_attempts_run_out(
    webhook: Webhook, status: int
) -> None:
    webhook.script = [Reply(status, body=b"busy, try later")]
    result, sleeps = deliver(webhook.url, attempts=3)
    assert (result.delivered, result.attempts) == (False, 3)
    assert result.last_error == f"HTTP {status}: busy, try later"
    assert len(webhook.received) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_statuses_are_not_retried(webhook: Webhook, status: int) -> None:
    webhook.script = [Reply(status, {"Location": "http://elsewhere/"}, b'{"error": "bad hook"}')]
    result, sleeps = deliver(webhook.url)
    assert result == notify.DeliveryResult(False, 1, f'HTTP {status}: {{"error": "bad hook"}}')
    assert sleeps == [] and len(webhook.received) == 1


def test_the_backoff_grows_exponentially_with_full_jitter_up_to_the_cap(webhook: Webhook) -> None:
    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    webhook.script = [Reply(500)]
    _, sleeps = deliver(
        webhook.url, attempts=7, initial_backoff_s=1.0, max_backoff_s=10.0, rng=Highest()
    )
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    _, jittered = deliver(webhook.url, attempts=7, initial_backoff_s=1.0, max_backoff_s=10.0)
    assert all(0 <= wait <= cap for wait, cap in zip(jittered, sleeps, strict=True))
    assert jittered != sleeps


def test_a_server_that_never_answers_is_bounded_by_the_timeout(webhook: Webhook) -> None:
    webhook.script = [HANG]
    started = time.monotonic()
    result, sleeps = deliver(webhook.url, attempts=2, timeout_s=0.3)
    elapsed = time.monotonic() - started
    assert (result.delivered, result.attempts) == (False, 2)
    assert result.last_error == "no reply within 0.3 s"
    assert 0.6 <= elapsed < 3.0
    assert len(sleeps) == 1


def test_a_reply_that_never_ends_is_cut_off_at_the_timeout(webhook: Webhook) -> None:
    webhook.script = [DRIP]
    started = time.monotonic()
    result, _ = deliver(webhook.url, attempts=1, timeout_s=0.3)
    assert (result.delivered, result.last_error) == (False, "no reply within 0.3 s")
    assert time.monotonic() - started < 3.0


def test_an_endless_reply_is_read_only_in_part(webhook: Webhook) -> None:
    webhook.script = [FLOOD]
    result, _ = deliver(webhook.url, attempts=1, timeout_s=5.0)
    assert result.last_error == "HTTP 500: " + "e" * 200


def test_an_unreachable_webhook_is_retried_and_reported_without_raising() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result, sleeps = deliver(f"http://127.0.0.1:{port}/", attempts=3)
    assert (result.delivered, result.attempts, len(sleeps)) == (False, 3, 2)
    assert result.last_error is not None and "ConnectError" in result.last_error


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "http://", "not a url"])
def test_a_url_that_cannot_be_posted_to_is_reported_at_once(url: str) -> None:
    result, sleeps = deliver(url)
    assert (result.delivered, result.attempts, sleeps) == (False, 0, [])
    assert (
        result.last_error is not None and "is not an http(s) URL with a host" in result.last_error
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            "https://hooks.example.com:99999/x",
            "Port out of range",
        ),  # the CRD's URL pattern lets it through
        ("https://[fe80::1/x", "not an http(s) URL"),
        (f"https://{'a' * 64}.example.com/x", "does not resolve"),  # a DNS label is at most 63
    ],
)
def test_a_url_python_cannot_parse_or_encode_is_reported_not_raised(url: str, why: str) -> None:
    result, sleeps = deliver(url)
    assert (result.delivered, result.attempts, sleeps) == (False, 0, [])
    assert result.last_error is not None and why in result.last_error


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # the operator's own pod
        "169.254.169.254",  # the cloud metadata service
        "10.96.0.1",  # a cluster Service
        "192.168.1.10",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:169.254.169.254",  # IPv4-mapped
    ],
)
def test_a_notice_is_never_posted_to_a_non_public_address_unless_allowed(address: str) -> None:
    async def resolves_to(host: str, port: int) -> list[str]:
        return ["93.184.215.14", address]  # one public answer does not make the other safe

    result, sleeps = deliver("https://hooks.example.com/x", allowed=(), resolve=resolves_to)
    assert (result.delivered, result.attempts, sleeps) == (False, 0, [])
    assert result.last_error is not None and "is not a public address" in result.last_error
    assert "notifications.allowedNetworks" in result.last_error


def test_a_refused_webhook_is_never_connected_to(webhook: Webhook) -> None:
    result, _ = deliver(webhook.url, allowed=())
    assert not result.delivered and webhook.received == []


def test_a_webhook_name_that_rebinds_to_loopback_is_never_posted_to(
    webhook: Webhook, rebinding: Rebinding
) -> None:
    url = webhook.url.replace("127.0.0.1", rebinding.name)
    result, sleeps = deliver(url, allowed=())  # the check's lookup answers a public address
    assert (result.delivered, result.attempts, sleeps) == (False, 1, [])
    assert result.last_error is not None
    assert result.last_error.startswith(f"{rebinding.name}: connecting to 127.0.0.1 ")
    assert "(loopback)" in result.last_error and webhook.received == []
    assert rebinding.lookups >= 2


def test_allowed_networks_come_from_the_environment_and_reject_typos() -> None:
    allowed = egress.allowed_networks({egress.ALLOWED_NETWORKS_ENV: "10.0.0.0/8, fd00::/8"})
    assert egress.refused_address("10.1.2.3", allowed) is None
    assert egress.refused_address("fd00::5", allowed) is None
    assert egress.refused_address("192.168.0.1", allowed) is not None
    assert egress.refused_address("93.184.215.14", ()) is None
    assert egress.allowed_networks({}) == ()
    with pytest.raises(ValueError, match="TIERS_WEBHOOK_ALLOWED_NETWORKS"):
        egress.allowed_networks({egress.ALLOWED_NETWORKS_ENV: "10.0.0.0/33"})


def test_a_signed_notice_verifies_with_the_secret(webhook: Webhook) -> None:
    deliver(webhook.url, secret=SECRET, clock=lambda: 1_800_000_000.5)
    request = webhook.received[0]
    timestamp = request.headers["X-Tiers-Timestamp"]
    signature = request.headers["X-Tiers-Signature"]
    assert timestamp == "1800000000"
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert notify.verify(SECRET, timestamp, request.body, signature, now=1_800_000_100)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        (SECRET, "1800000000", NOTICE.to_json().replace(b"1000", b"9999"), 1_800_000_000),
        (b"another-secret", "1800000000", NOTICE.to_json(), 1_800_000_000),
        (SECRET, "1800000001", NOTICE.to_json(), 1_800_000_000),
        (SECRET, "1800000000", NOTICE.to_json(), 1_800_000_301),
        (SECRET, "1800000000", NOTICE.to_json(), 1_799_999_699),
        (SECRET, "-1800000000", NOTICE.to_json(), 1_800_000_000),
        (SECRET, "soon", NOTICE.to_json(), 1_800_000_000),
    ],
    ids=[
        "tampered-body",
        "wrong-secret",
        "other-timestamp",
        "too-old",
        "from-the-future",
        "negative-timestamp",
        "not-a-number",
    ],
)
def test_a_signature_does_not_verify_when_anything_differs(
    secret: bytes, timestamp: str, body: bytes, now: float
) -> None:
    signature = notify.sign(SECRET, "1800000000", NOTICE.to_json())
    assert notify.verify(SECRET, "1800000000", NOTICE.to_json(), signature, now=1_800_000_000)
    assert not notify.verify(secret, timestamp, body, signature, now=now)


def test_each_attempt_is_signed_at_its_own_time(webhook: Webhook) -> None:
    webhook.script = [Reply(503), Reply(200)]
    times = iter([1_800_000_000.0, 1_800_000_000.0, 1_800_000_040.0, 1_800_000_040.0])
    deliver(webhook.url, secret=SECRET, clock=lambda: next(times))
    stamps = [r.headers["X-Tiers-Timestamp"] for r in webhook.received]
    assert stamps == ["1800000000", "1800000040"]
    for request in webhook.received:
        assert notify.verify(
            SECRET,
            request.headers["X-Tiers-Timestamp"],
            request.body,
            request.headers["X-Tiers-Signature"],
            now=1_800_000_040,
        )


@pytest.mark.parametrize(
    ("state", "duration", "expected"),
    [
        (
            "Succeeded",
            125,
            (
                "Normal",
                "RunSucceeded",
                "run nightly-29453770 succeeded: 1000 records (3 failed),"
                " $0.001500, in 2m05s; output in s3a://bucket/out/",
            ),
        ),
        (
            "Failed",
            3725,
            (
                "Warning",
                "RunFailed",
                "run nightly-29453770 failed: 1000 records (3 failed),"
                " $0.001500, in 1h02m05s; output in s3a://bucket/out/",
            ),
        ),
        (
            "Failed",
            9,
            (
                "Warning",
                "RunFailed",
                "run nightly-29453770 failed: 1000 records (3 failed),"
                " $0.001500, in 9s; output in s3a://bucket/out/",
            ),
        ),
    ],
)
def test_the_event_says_how_the_run_ended(
    state: str, duration: int, expected: tuple[str, str, str]
) -> None:
    notice = dataclasses.replace(NOTICE, state=state, duration_seconds=duration)
    assert notify.event_message(notice) == expected


def test_the_public_surface_is_what_all_names() -> None:
    public = {
        name
        for name, value in vars(notify).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == notify.__name__
    }
    assert public <= set(notify.__all__)
    assert all(hasattr(notify, name) for name in notify.__all__)
