"""OpenAI-style errors: the status code and body an OpenAI SDK knows how to read."""

from __future__ import annotations

import dataclasses
import decimal

import orjson


@dataclasses.dataclass(frozen=True)
class GatewayError(Exception):
    """An error answered to the client as `{"error": {message, type, param, code}}`."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def invalid(param: str, message: str) -> GatewayError:
    """A request the client must fix; `param` names the field."""
    return GatewayError(400, f"{param}: {message}", param=param, code="invalid_value")


def unauthorized() -> GatewayError:
    return GatewayError(
        401,
        "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.",
        type="invalid_request_error",
        code="invalid_api_key",
    )


def rate_limited(limit: str, retry_after_s: float) -> GatewayError:
    seconds = max(1, int(retry_after_s + 0.999))
    return GatewayError(
        429,
        f"Rate limit reached for {limit}. Try again in {seconds}s.",
        type="requests" if limit == "requests per minute" else "tokens",
        code="rate_limit_exceeded",
        headers=((b"retry-after", str(seconds).encode()),),
    )


def insufficient_quota(budget_usd: decimal.Decimal) -> GatewayError:
    """The endpoint's monthly budget is spent (OpenAI's answer when an account's quota is)."""
    return GatewayError(
        429,
        f"This endpoint's monthly budget of ${budget_usd} (spec.budget.monthlyUSD) is spent; "
        "calls resume at the start of next month (UTC) or once the budget is raised.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


def model_not_found(model: str, served: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{model}' does not exist on this endpoint; it serves '{served}'.",
        param="model",
        code="model_not_found",
    )


def upstream_failed(detail: str) -> GatewayError:
    return GatewayError(
        502, f"All backends failed: {detail}", type="api_error", code="upstream_unavailable"
    )


def stream_broken(backend: str, why: str) -> GatewayError:
    """A stream the backend broke off after its 200 left: sent as the stream's last event."""
    return GatewayError(
        502,
        f"The backend {backend} broke off the stream: {why}",
        type="api_error",
        code="upstream_stream_broken",
    )
