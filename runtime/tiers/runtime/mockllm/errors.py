"""OpenAI-style error replies: one exception the app turns into a status, headers and body.

Bodies follow OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so SDKs raise
their usual exception types (`BadRequestError`, `AuthenticationError`, `RateLimitError`, ...).
"""

import orjson


class ApiError(Exception):
    """A request that ends in an error reply; `param` names the offending field, if any."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return orjson.dumps({"error": error})


def invalid_request(message: str, *, param: str | None, code: str | None = None) -> ApiError:
    return ApiError(400, message, type="invalid_request_error", param=param, code=code)


def bad_type(param: str, expected: str) -> ApiError:
    return invalid_request(f"'{param}' must be {expected}.", param=param, code="invalid_type")


def missing(param: str) -> ApiError:
    return invalid_request(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def not_found(path: str) -> ApiError:
    return ApiError(
        404, f"Unknown request URL: {path}.", type="invalid_request_error", code="unknown_url"
    )


def unauthorized(*, provided: bool) -> ApiError:
    # Never echo the key back: error bodies end up in logs.
    message = (
        "Incorrect API key provided."
        if provided
        else "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'"
        " (or 'api-key: KEY' on Azure paths)."
    )
    return ApiError(401, message, type="invalid_request_error", code="invalid_api_key")


def rate_limited(retry_after_s: float) -> ApiError:
    seconds = f"{retry_after_s:g}"
    headers = (
        (b"retry-after", seconds.encode()),
        (b"retry-after-ms", str(round(retry_after_s * 1000)).encode()),
        (b"x-ratelimit-remaining-requests", b"0"),
    )
    return ApiError(
        429,
        f"Rate limit reached (injected by mockllm). Please try again in {seconds}s.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def injected(status: int) -> ApiError:
    """The reply to an injected failure other than 429: OpenAI's 5xx body, or a generic 4xx."""
    if status >= 500:
        return ApiError(
            status,
            "The server had an error while processing your request (injected by mockllm).",
            type="server_error",
        )
    return ApiError(status, f"Injected failure {status} (mockllm).", type="invalid_request_error")
