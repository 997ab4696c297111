"""The console's errors as the page reads them: an HTTP status and
`{"error": {"message": ..., "reason": ...}}`, the message written for a person.

Route code raises `ConsoleError`; `install()` renders it, the apiserver's refusals (their own
message passed on: it names the user, verb and resource) and anything unexpected (a generic
message; the details go to the log, never a token) the same way.
"""

from __future__ import annotations

import http
import logging

import fastapi
import httpx2
import lightkube
from fastapi import responses
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)


class ConsoleError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def body(status: int, reason: str, message: str) -> responses.JSONResponse:
    return responses.JSONResponse(
        {"error": {"message": message, "reason": reason}}, status_code=status
    )


def from_api_error(error: lightkube.ApiError) -> ConsoleError:
    """The apiserver's refusal as the page sees it: its status code, reason and message."""
    status = error.status.code or 502
    reason = error.status.reason or "ApiError"
    return ConsoleError(status, reason, error.status.message or str(error))


def install(app: fastapi.FastAPI) -> None:
    @app.exception_handler(ConsoleError)
    async def _console(_: fastapi.Request, error: ConsoleError) -> responses.JSONResponse:
        return body(error.status, error.reason, error.message)

    @app.exception_handler(lightkube.ApiError)
    async def _api(_: fastapi.Request, error: lightkube.ApiError) -> responses.JSONResponse:
        found = from_api_error(error)
        return body(found.status, found.reason, found.message)

    @app.exception_handler(httpx2.HTTPError)
    async def _unreachable(_: fastapi.Request, error: httpx2.HTTPError) -> responses.JSONResponse:
        log.warning("upstream request failed: %s", type(error).__name__)
        return body(
            502, "Unreachable", f"the server behind the console failed: {type(error).__name__}"
        )

    @app.exception_handler(HTTPException)
    async def _http(_: fastapi.Request, error: HTTPException) -> responses.JSONResponse:
        reason = http.HTTPStatus(error.status_code).phrase.replace(" ", "")
        return body(error.status_code, reason, str(error.detail))

    @app.exception_handler(fastapi.exceptions.RequestValidationError)
    async def _invalid(
        _: fastapi.Request, error: fastapi.exceptions.RequestValidationError
    ) -> responses.JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return body(422, "Invalid", problems)

    @app.exception_handler(Exception)
    async def _unexpected(_: fastapi.Request, error: Exception) -> responses.JSONResponse:
        log.exception("unexpected error")
        return body(500, "InternalError", f"the console failed: {type(error).__name__}")
