"""Why a call to a model got no answer worth passing on, and whether trying again may help.

`backends.Backend` turns a broken connection, a timeout or a retryable status into a `Failure`;
`retries.send_with_retries` decides from it whether and when to try again. Every caller reads
error bodies and Retry-After here, so a row's error in a stream job and a gateway's 502 say the
same thing about the same upstream answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import orjson

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Statuses worth another attempt: the server was busy, throttled or failed, not the request."""
ERROR_BODY_CHARS = 200
"""How much of a body that is not an OpenAI-style error is quoted in a message."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """One attempt that got no usable answer; the next attempt may get one."""

    message: str
    """What went wrong, for a log line, an error row or a client's error message."""
    status: int | None = None
    """The upstream's HTTP status; None when no response arrived (connection, timeout)."""
    retry_after_s: float | None = None
    """What the server asked to wait before the next attempt, if it said."""

    def but(self, why: str) -> Failure:
        """The same failure with `why` the retries end added to its message."""
        return dataclasses.replace(self, message=f"{self.message} ({why})")


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def from_response(status: int, headers: Mapping[str, str], body: bytes) -> Failure:
    """A retryable status's failure, with the server's message and its Retry-After."""
    return Failure(error_message(status, body), status, parse_retry_after(headers))


def is_json_object(body: bytes) -> bool:
    """Whether a body parses as a JSON object, what every model route answers with."""
    try:
        return isinstance(orjson.loads(body), dict)
    except orjson.JSONDecodeError:
        return False


def not_json(status: int, body: bytes) -> Failure:
    """A success status whose body is not a JSON object (a broken backend or a proxy's page):
    nothing to pass on, and another attempt may get a real answer."""
    quoted = body[:ERROR_BODY_CHARS].decode(errors="replace").strip()
    return Failure(f"HTTP {status} with a body that is not a JSON object: {quoted!r}", status)


def from_exception(error: BaseException, *, timeout_ms: int) -> Failure:
    """A failure for an attempt that raised: it timed out, or the connection broke."""
    if isinstance(error, TimeoutError):
        return Failure(f"timed out after {timeout_ms} ms")
    return Failure(f"connection failed: {type(error).__name__}: {error}")


def error_message(status: int, body: bytes) -> str:
    """`HTTP 429: <the server's message>`, from an OpenAI-style error body where there is one."""
    try:
        message = str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = body[:ERROR_BODY_CHARS].decode(errors="replace").strip()
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `retry-after` (seconds; dates ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            continue
    return None
