"""The completion notice of a BatchJob run: a webhook POST, and the text of its Event.

The BatchJob handler calls `deliver(url, notice, secret=...)` when a run ends, with
spec.notification.webhookURL and the secret it references, and records `event_message(notice)`
as an Event on the BatchJob. A webhook that keeps failing comes back as a `DeliveryResult` with
the last error, for the handler to report as a condition: `deliver` does not raise for it.

What a receiver gets: `POST <webhookURL>`, `Content-Type: application/json`, and the body

    {"name": "nightly", "namespace": "ml", "run": "nightly-29453770", "state": "Succeeded",
     "records": 1000, "failed": 3, "costUSD": "0.123400", "durationSeconds": 125,
     "outputURI": "s3a://bucket/out/"}

`records` counts the records the run processed and `failed` those of them that ended in an
error; `costUSD` is a decimal string, as money is everywhere in Tiers. Headers:

    X-Tiers-Delivery: <namespace>/<name>/<run>   the same on every retry: deduplicate on it
    X-Tiers-Timestamp: <unix seconds>            when this attempt was sent
    X-Tiers-Signature: sha256=<hex>              only when a secret is referenced

To check a signature, compute HMAC-SHA256 with the shared secret over the X-Tiers-Timestamp value,
a ".", and the raw body bytes, compare its hex digest with the header in constant time, and refuse
timestamps more than five minutes from your clock, so that a captured request cannot be replayed
later. `verify()` does exactly that; in Python elsewhere:

    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= 300
    ok = fresh and hmac.compare_digest("sha256=" + expected, signature)

Retries: connection errors, timeouts, 408, 429 and 5xx are tried again, up to `attempts` tries,
after a full-jitter exponential backoff (a random wait up to initial * 2^n, capped at
max_backoff_s) or the Retry-After the server asked for (capped the same). Any other status ends
the delivery: 2xx delivered, other 4xx and 3xx not (redirects are not followed). Each attempt,
connecting included, is cut off after `timeout_s`, and at most 64 KiB of a response is read, so a
delivery ends within attempts * timeout_s + (attempts - 1) * max_backoff_s.

Where a notice may go: the URL comes from whoever may write a BatchJob, and the POST leaves from
the operator's pod, so it goes to public addresses only, or to networks the cluster admin allowed
(`egress`: the name is checked before each delivery, and each connection's address as it is
made, so a DNS answer that changes in between is refused too).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import email.utils
import hashlib
import hmac
import json
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

import httpx2

from tiers.operator import egress
from tiers.runtime import pricing

__all__ = [
    "MAX_RESPONSE_BYTES",
    "RETRYABLE_STATUSES",
    "DeliveryResult",
    "Notice",
    "deliver",
    "event_message",
    "sign",
    "verify",
]

RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
MAX_RESPONSE_BYTES = 64 * 1024
DELIVERY_HEADER = "X-Tiers-Delivery"
TIMESTAMP_HEADER = "X-Tiers-Timestamp"
SIGNATURE_HEADER = "X-Tiers-Signature"
_ERROR_EXCERPT = 200


@dataclasses.dataclass(frozen=True)
class Notice:
    """What the completion notice says about one finished run."""

    name: str
    namespace: str
    run: str
    state: Literal["Succeeded", "Failed"]
    records: int
    failed: int
    cost_usd: decimal.Decimal
    duration_seconds: int
    output_uri: str

    def to_wire(self) -> dict[str, str | int]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "run": self.run,
            "state": self.state,
            "records": self.records,
            "failed": self.failed,
            "costUSD": pricing.format_usd(self.cost_usd),
            "durationSeconds": self.duration_seconds,
            "outputURI": self.output_uri,
        }

    def to_json(self) -> bytes:
        """The request body, byte for byte: what the signature covers."""
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()

    @property
    def delivery_id(self) -> str:
        return f"{self.namespace}/{self.name}/{self.run}"


@dataclasses.dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    last_error: str | None
    """Why the last attempt failed (status and the start of the reply, or the network error)."""


def sign(secret: bytes, timestamp: int | str, body: bytes) -> str:
    """The X-Tiers-Signature value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """Whether a notice was signed with `secret` at a time within `tolerance_s` of `now`: what a
    receiver checks before it trusts the body."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def event_message(notice: Notice) -> tuple[Literal["Normal", "Warning"], str, str]:
    """(type, reason, message) of the Event that tells the BatchJob's owner how a run ended."""
    summary = (
        f"{notice.records} records ({notice.failed} failed), "
        f"${pricing.format_usd(notice.cost_usd)}, in {_duration(notice.duration_seconds)};"
        f" output in {notice.output_uri}"
    )
    if notice.state == "Succeeded":
        return "Normal", "RunSucceeded", f"run {notice.run} succeeded: {summary}"
    return "Warning", "RunFailed", f"run {notice.run} failed: {summary}"


def _duration(seconds: int) -> str:
    minutes, second = divmod(max(seconds, 0), 60)
    hours, minute = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minute:02d}m{second:02d}s"
    return f"{minute}m{second:02d}s" if minute else f"{second}s"


async def deliver(
    url: str,
    notice: Notice,
    *,
    secret: bytes | None,
    allowed: Iterable[egress.Network] = (),
    resolve: egress.Resolve | None = None,
    attempts: int = 5,
    initial_backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.time,
) -> DeliveryResult:
    """POST the notice to `url`, retrying what may pass on a later try; never raises for a
    failing webhook. Only public addresses and those in `allowed` are posted to (`egress`).
    `clock` stamps the signature; `sleep` and `rng` shape the backoff."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if (why := await egress.refusal(url, allowed, resolve=resolve)) is not None:
        return DeliveryResult(False, 0, why)
    rng = rng or random.Random()
    body = notice.to_json()
    last_error: str | None = None
    timeout = httpx2.Timeout(timeout_s)
    host = str(urllib.parse.urlsplit(url).hostname)
    with egress.held(host, allowed) as guard:
        async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            for attempt in range(1, attempts + 1):
                retry_after: float | None = None
                try:
                    async with asyncio.timeout(timeout_s):
                        status, excerpt, retry_after_header = await _post(
                            client, url, body, _headers(notice, body, secret, clock)
                        )
                    retry_after = _retry_after(retry_after_header, now=clock())
                except (httpx2.UnsupportedProtocol, httpx2.InvalidURL) as error:
                    return DeliveryResult(False, attempt, f"{url!r} cannot be posted to: {error}")
                except (TimeoutError, httpx2.TimeoutException):
                    last_error = f"no reply within {timeout_s:g} s"
                except (httpx2.TransportError, OSError) as error:
                    last_error = f"{type(error).__name__}: {error}" if str(error) else repr(error)
                except Exception:  # egress.NotAllowed, as it comes out of httpx's connect
                    if guard.refused is None:
                        raise
                else:
                    if 200 <= status < 300:
                        return DeliveryResult(True, attempt, None)
                    last_error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
                    if status not in RETRYABLE_STATUSES:
                        return DeliveryResult(False, attempt, last_error)
                if guard.refused is not None:  # the name answered another address this time
                    return DeliveryResult(False, attempt, guard.refused)
                if attempt < attempts:
                    if retry_after is None:
                        ceiling = min(max_backoff_s, initial_backoff_s * 2 ** (attempt - 1))
                        await sleep(rng.uniform(0, ceiling))
                    else:
                        await sleep(min(retry_after, max_backoff_s))
    return DeliveryResult(False, attempts, last_error)


def _headers(
    notice: Notice, body: bytes, secret: bytes | None, clock: Callable[[], float]
) -> dict[str, str]:
    timestamp = str(int(clock()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tiers-operator",
        DELIVERY_HEADER: notice.delivery_id,
        TIMESTAMP_HEADER: timestamp,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


async def _post(
    client: httpx2.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, str | None]:
    """(status, the start of the reply as text, its Retry-After header), reading no more than
    MAX_RESPONSE_BYTES of the reply."""
    async with client.stream("POST", url, content=body, headers=headers) as response:
        received = bytearray()
        async for chunk in response.aiter_raw():
            received += chunk
            if len(received) >= MAX_RESPONSE_BYTES:
                break
        text = bytes(received[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace")
        excerpt = " ".join(text.split())[:_ERROR_EXCERPT]
        return response.status_code, excerpt, response.headers.get("Retry-After")


def _retry_after(value: str | None, *, now: float) -> float | None:
    """Retry-After as seconds from now: a number of seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - now, 0.0)
