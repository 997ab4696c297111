"""OpenAI Batch API files: an input line read into a request, and each request's outcome written
as a line of OpenAI's output or error file, so that a file prepared for OpenAI's Batch API runs
here unchanged and its results read back with the same code. Pure; `scoring` calls it in Spark's
Python workers, `job` when it reads back what earlier attempts did.

Input, one JSON object a line (OpenAI's "request input object"):

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

`url` is /v1/chat/completions, /v1/completions or /v1/embeddings, and each line's own url picks
its route, so one file may mix them (OpenAI asks for one endpoint per batch; nothing here needs
that). The body is sent as it is (`modelcall.raw`: the config's model where it names none). A
line that is not such a request is an error line of its own, never the run's failure. custom_id
must be unique, as OpenAI requires: a rerun skips every line whose custom_id has a good result.

Output, one JSON object a line (OpenAI's "request output object"):

    {"id": "batch_req_<hex>", "custom_id": "r1",
     "response": {"status_code": 200, "request_id": "...", "body": {<the reply>}}, "error": null}

the same with the final non-2xx status and its error body for a request the model refused, and

    {"id": "batch_req_<hex>", "custom_id": "r1" (null when the line had none), "response": null,
     "error": {"code": "...", "message": "..."}}

for one that got no answer, or was not a request (codes: `ERROR_CODES`). 2xx lines are the
output file's (outcome `ok`); the rest are the error file's (outcome `error`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from tiers.runtime.modelcall import raw, results
from tiers.runtime.providers import routes

ROUTES: Mapping[str, routes.Route] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
SPARK_SCHEMA = "`line` string, `outcome` string"
"""The result rows: the output line, and the folder it goes to (Spark's text writer takes one
column besides the ones it partitions by)."""

INVALID_JSON = "invalid_json_line"
INVALID_REQUEST = "invalid_request"
NO_RESPONSE = "no_response"
INVALID_RESPONSE = "invalid_response"
ERROR_CODES: Mapping[str, str] = {
    INVALID_JSON: "the line is not a JSON object",
    INVALID_REQUEST: "a field of the line is missing or not one of its allowed values",
    NO_RESPONSE: "no answer came: the connection failed or every attempt timed out",
    INVALID_RESPONSE: "the model answered 2xx with a body that is not a JSON object",
}
"""The `error.code` of an error line without a response, and what each means."""

_SHOWN_CHARS = 80


class Line(NamedTuple):
    """One input line: its request, or why it is not one (`code` and `error`)."""

    custom_id: str | None
    request: raw.RawRequest | None
    code: str | None = None
    error: str | None = None


class Written(NamedTuple):
    line: str
    outcome: str
    """`ok` (the output file) or `error` (the error file)."""


def read(text: str | None) -> Line:
    """The request on an input line, or the line's error naming the field at fault."""
    try:
        fields = orjson.loads(text or "")
    except orjson.JSONDecodeError as error:
        return Line(None, None, INVALID_JSON, f"not a JSON line: {error}")
    if not isinstance(fields, dict):
        return Line(None, None, INVALID_JSON, f"a line must be a JSON object, not {_shown(fields)}")
    custom_id = fields.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return _refused(None, f"'custom_id' must be a non-empty string, {_not(custom_id)}")
    method = fields.get("method")
    if method != "POST":
        return _refused(custom_id, f"'method' must be \"POST\", {_not(method)}")
    url = fields.get("url")
    route = ROUTES.get(url) if isinstance(url, str) else None
    if route is None:
        allowed = ", ".join(ROUTES)
        return _refused(custom_id, f"'url' must be one of {allowed}, {_not(url)}")
    body = fields.get("body")
    if not isinstance(body, dict):
        return _refused(custom_id, f"'body' must be a JSON object, {_not(body)}")
    if body.get("stream"):
        return _refused(
            custom_id, ("'body.stream' must be false or absent: a batch takes whole replies")
        )
    return Line(custom_id, raw.RawRequest(custom_id, route, body))


def written(line: Line, reply: raw.RawReply | None) -> Written:
    """The output or error line of an input line: its reply's, or its own error's when it was
    not sent (`reply` None)."""
    if reply is None:
        return _error_line(line.custom_id, line.code or INVALID_REQUEST, line.error or "not sent")
    if reply.error is not None:
        code = NO_RESPONSE if reply.status_code is None else INVALID_RESPONSE
        return _error_line(line.custom_id, code, reply.error)
    response = {
        "status_code": reply.status_code,
        "request_id": reply.request_id,
        "body": reply.json_body(),
    }
    return Written(
        _line(line.custom_id, response=response, error=None),
        "ok" if reply.succeeded else "error",
    )


def done_cost(text: str, prices: raw.ReplyPrices) -> tuple[str | None, str]:
    """The custom_id of an output line and what its reply cost, priced as the run priced it
    (so a rerun's skipped cost is what the earlier attempts counted)."""
    try:
        fields = orjson.loads(text)
        body = fields["response"]["body"]
        return fields.get("custom_id"), prices.cost(body)[1]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        # Not a line this job wrote: no id, so its request is sent again.
        return None, results.NO_COST


def prompt_text(request: raw.RawRequest) -> str:
    """The text the model reads in a request, for the estimate to count: the messages' text
    (chat), the prompt (completions) or the input (embeddings), lists joined by lines."""
    body = request.body
    if request.route == "chat":
        messages = body.get("messages")
        found: list[str] = []
        for message in messages if isinstance(messages, list) else []:
            content = message.get("content") if isinstance(message, dict) else None
            found.extend(_texts(content, part_key="text"))
        return "\n".join(found)
    return "\n".join(_texts(body.get("prompt" if request.route == "completions" else "input")))


def _texts(value: Any, *, part_key: str | None = None) -> list[str]:
    """The strings of a string or a list of strings (or of parts with `part_key` text)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    found = []
    for item in value:
        if part_key is not None and isinstance(item, dict):
            item = item.get(part_key)
        if isinstance(item, str):
            found.append(item)
    return found


def _refused(custom_id: str | None, message: str) -> Line:
    return Line(custom_id, None, INVALID_REQUEST, message)


def _error_line(custom_id: str | None, code: str, message: str) -> Written:
    error = {"code": code, "message": message}
    return Written(_line(custom_id, response=None, error=error), "error")


def _line(
    custom_id: str | None, *, response: dict[str, Any] | None, error: dict[str, str] | None
) -> str:
    fields = {"id": new_line_id(), "custom_id": custom_id, "response": response, "error": error}
    return orjson.dumps(fields).decode()


def new_line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def _not(value: Any) -> str:
    return "but it is missing" if value is None else f"not {_shown(value)}"


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
