"""Requests whose body the caller prepared, sent as they are, and what came back for each.

The sibling of row scoring: where `client.ModelClient.score` builds a body from a template and
reads the reply into text, `client.ModelClient.send_raw` sends a body the caller made (an OpenAI
Batch API line's, say) to the route it names and hands back the whole answer, for the caller to
pass on. Both go through the same backend, pool, in-flight limit and retries. A model error never
raises; each request gets one `RawReply`:

- an answer, whatever its status: `status_code`, the `body` bytes as the server sent them, its
  `x-request-id` (or one made up here, `req_<hex>`), and for a 2xx answer its tokens and cost;
- a retryable status (429, 5xx) that outlived its retries: that status, with OpenAI's error body
  around the provider layer's message (`error_body`), since that layer keeps the message only;
- no answer (the connection failed, every attempt timed out) or a 2xx whose body is not a JSON
  object: `error` says why, and `status_code` is None or the useless answer's.

The body's `model` is sent as given; a body without one gets the config's model, and a backend
pinned to one model gets its own (`providers.backends.Backend.payload`). A 2xx reply is priced by
the model its body names (the one that answered), else by the config's model: `ReplyPrices`,
which whoever prices a stored reply again uses too, so both get the same figure.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from tiers.runtime import pricing, providers
from tiers.runtime.modelcall import config, results
from tiers.runtime.providers import failures, routes

if TYPE_CHECKING:
    from tiers.runtime.providers import http1

REQUEST_ID_HEADER = "x-request-id"


class RawRequest(NamedTuple):
    key: str
    """The caller's idempotency key (a batch line's custom_id)."""
    route: routes.Route
    body: Mapping[str, Any]
    """The JSON body, sent as it is (with the config's model where it names none)."""


class RawReply(NamedTuple):
    key: str
    status_code: int | None
    """The final answer's HTTP status; None when no answer came."""
    body: bytes
    """The final answer's body as the server sent it (an error body for a non-2xx); b"" when
    no answer came."""
    request_id: str
    """The server's `x-request-id`, else one made up here."""
    error: str | None
    """Why there is no usable answer: none came, or a 2xx body is not a JSON object."""
    attempts: int
    latency_ms: int
    tokens_in: int
    tokens_out: int
    cost_usd: str

    @property
    def succeeded(self) -> bool:
        """A 2xx answer with a JSON object for a body."""
        return self.error is None and self.status_code is not None and self.status_code < 300

    def json_body(self) -> dict[str, Any]:
        """The answer's body as a JSON object: the server's own, or OpenAI's error shape around
        its text when it is not one (an HTML 502 page, say). {} when no answer came."""
        if self.status_code is None:
            return {}
        try:
            parsed = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        text = self.body[: failures.ERROR_BODY_CHARS].decode(errors="replace").strip()
        return error_body(self.status_code, text or f"HTTP {self.status_code}")


class ReplyPrices:
    """Prices a 2xx reply body by the model it names, else the config's; one per config."""

    def __init__(self, settings: config.ModelCallConfig) -> None:
        self._default = settings.model
        self._overrides = providers.price_overrides(settings.prices)
        self._prices: dict[str, pricing.Price] = {}

    def cost(self, body: Mapping[str, Any]) -> tuple[pricing.Usage, str]:
        """The reply's usage and its cost as a decimal string."""
        model = body.get("model")
        name = model if isinstance(model, str) and model else self._default
        price = self._prices.get(name)
        if price is None:
            price = self._prices[name] = pricing.price_for(name, self._overrides)
        usage = pricing.Usage.from_openai(body.get("usage"))
        return usage, pricing.format_usd(pricing.cost(usage, price))


def with_model(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The body to send: as given, with `model` where it names none."""
    return dict(body) if "model" in body else {**body, "model": model}


def reply(
    key: str,
    outcome: http1.Response | failures.Failure,
    *,
    attempts: int,
    latency_ms: int,
    prices: ReplyPrices,
) -> RawReply:
    """The `RawReply` of a request's last attempt (what `retries.send_with_retries` returned)."""

    def made(status: int | None, body: bytes, request_id: str, error: str | None) -> RawReply:
        return RawReply(
            key, status, body, request_id, error, attempts, latency_ms, 0, 0, results.NO_COST
        )

    if isinstance(outcome, failures.Failure):
        if outcome.status is None:
            return made(None, b"", new_request_id(), outcome.message)
        body = orjson.dumps(error_body(outcome.status, outcome.message))
        return made(outcome.status, body, new_request_id(), None)
    request_id = outcome.headers.get(REQUEST_ID_HEADER) or new_request_id()
    if not 200 <= outcome.status < 300:
        return made(outcome.status, outcome.body, request_id, None)
    try:
        parsed = orjson.loads(outcome.body)
    except orjson.JSONDecodeError as error:
        parsed, why = None, f"not JSON: {error}"
    else:
        why = f"a JSON {type(parsed).__name__}"
    if not isinstance(parsed, dict):
        message = f"the {outcome.status} reply's body is not a JSON object ({why})"
        return made(outcome.status, outcome.body, request_id, message)
    usage, cost = prices.cost(parsed)
    return RawReply(
        key, outcome.status, outcome.body, request_id, None, attempts, latency_ms,
        usage.prompt_tokens, usage.completion_tokens, cost,
    )  # fmt: skip


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error body for `status`: 429 as a rate limit, the rest as a server error."""
    rate_limited = status == 429
    return {
        "error": {
            "message": message,
            "type": "requests" if rate_limited else "server_error",
            "param": None,
            "code": "rate_limit_exceeded" if rate_limited else None,
        }
    }


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"
