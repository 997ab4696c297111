"""The test server's HTTP front: the subset of the Databricks REST API that databricks-sdk calls
for a BatchJob, and the Files API on its volumes (`volumes`), on 127.0.0.1, answering errors in
Databricks' shape (`{"error_code": ..., "message": ...}`), with the latency and errors a test
injects.

JSON bodies are bounded (`MAX_BODY_BYTES`), a file's by the Files API's 5 GiB and streamed to
disk, and every connection has a read timeout (`json_http`).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from tiers.devenv import json_http
from tiers.devenv.databricks import volumes, workspace

MAX_BODY_BYTES = 10 * 1024 * 1024
TICK_S = 0.1
FILES = "/api/2.0/fs/files/"
DIRECTORIES = "/api/2.0/fs/directories/"

Route = Callable[[workspace.Workspace, dict[str, Any]], dict[str, Any]]

_POST: dict[str, Route] = {
    "/api/2.2/jobs/create": lambda w, b: w.create_job(b),
    "/api/2.2/jobs/run-now": lambda w, b: w.run_now(b),
    "/api/2.2/jobs/runs/submit": lambda w, b: w.submit(b),
    "/api/2.2/jobs/runs/cancel": lambda w, b: w.cancel(int(b.get("run_id") or 0)),
    "/api/2.0/secrets/scopes/create": lambda w, b: w.create_scope(b),
    "/api/2.0/secrets/put": lambda w, b: w.put_secret(b),
    "/api/2.0/workspace/import": lambda w, b: w.import_file(b),
    "/api/2.0/workspace/mkdirs": lambda w, b: {},
}
_GET: dict[str, Route] = {
    "/api/2.2/jobs/runs/get": lambda w, q: w.get_run(int(q.get("run_id") or 0)),
    "/api/2.2/jobs/runs/list": lambda w, q: w.list_runs(q),
    "/api/2.2/jobs/runs/get-output": lambda w, q: w.get_output(int(q.get("run_id") or 0)),
    "/api/2.0/secrets/get": lambda w, q: w.get_secret(q),
}
# Jobs 2.1 paths answer as 2.2's do (older clients).
_POST.update({path.replace("/2.2/", "/2.1/"): route for path, route in list(_POST.items())})
_GET.update({path.replace("/2.2/", "/2.1/"): route for path, route in list(_GET.items())})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, tokens: set[str], **options: Any) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.workspace = workspace.Workspace(base_url=lambda: self.url, tokens=tokens, **options)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(json_http.Handler):
    server: Server
    max_body_bytes = MAX_BODY_BYTES

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        space = self.server.workspace
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query))
        try:
            # A JSON body is read first, so that an error answer leaves none behind on the
            # connection; a file's body is streamed by `_files`.
            body = self._body() if method == "POST" else query
            if space.faults.latency_s:
                time.sleep(space.faults.latency_s)
            if path == "/.well-known/databricks-config":
                # What a workspace host answers: its id, and that it is a workspace (not an
                # account console). Nothing here needs a token.
                self.answer(200, {"workspace_id": "7474650000000000"})
                return
            space.authorize(self.headers.get("Authorization"))
            injected = _take_error(space, path)
            if injected is not None:
                self._error(injected)
                return
            if path.startswith((FILES, DIRECTORIES)):
                self._files(method, path, query)
                return
            route = {"POST": _POST, "GET": _GET}.get(method, {}).get(path)
            if route is None:
                raise workspace.ApiError(
                    404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'"
                )
            with space.lock:
                space.requests.append((method, path, body))
            answer = route(space, body)
            delay = space.faults.answer_delay_s.get(path)
            if delay:
                time.sleep(delay)
            self.answer(200, answer)
        except json_http.BodyRefused as refused:
            code = "REQUEST_LIMIT_EXCEEDED" if refused.status == 413 else "MALFORMED_REQUEST"
            self.answer(refused.status, {"error_code": code, "message": refused.message})
        except workspace.ApiError as error:
            self.answer(error.status, {"error_code": error.code, "message": error.message})
        except (ValueError, KeyError, TypeError) as error:
            self.answer(400, {"error_code": "MALFORMED_REQUEST", "message": str(error)})

    def _files(self, method: str, path: str, query: dict[str, str]) -> None:
        """The Files API: a file's PUT, GET, HEAD and DELETE; a directory's PUT (mkdir -p)."""
        files = self.server.workspace.volumes
        target = "/" + path.removeprefix(FILES if path.startswith(FILES) else DIRECTORIES)
        with self.server.workspace.lock:
            self.server.workspace.requests.append((method, path, dict(query)))
        if path.startswith(DIRECTORIES):
            if method != "PUT":
                raise workspace.ApiError(
                    405, "ENDPOINT_NOT_FOUND", f"This server has no {method} on directories."
                )
            files.make_directory(target)
            self._answer_empty(204, {})
        elif method == "PUT":
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise workspace.ApiError(411, "MALFORMED_REQUEST", "Content-Length is required.")
            overwrite = query.get("overwrite", "true").lower() != "false"
            files.write(target, self.rfile, int(length), overwrite=overwrite)
            self._answer_empty(204, {})
        elif method == "HEAD":
            self._answer_empty(200, files.metadata(target))
        elif method == "GET":
            with files.read(target) as source:
                self._answer_empty(200, files.metadata(target))
                while chunk := source.read(volumes.COPY_BYTES):
                    self.wfile.write(chunk)
        elif method == "DELETE":
            files.delete(target)
            self._answer_empty(204, {})
        else:
            raise workspace.ApiError(405, "ENDPOINT_NOT_FOUND", f"No {method} on files.")

    def _answer_empty(self, status: int, headers: dict[str, str]) -> None:
        """Headers only (the body, if any, follows): a file's, or none."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", "0")
        self.end_headers()

    def _body(self) -> dict[str, Any]:
        found = json.loads(self.read_body() or b"{}")
        if not isinstance(found, dict):
            raise ValueError("the body must be a JSON object")
        return found

    def _error(self, status: int) -> None:
        code = {429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}.get(
            status, "INTERNAL_ERROR"
        )
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        self.answer(status, {"error_code": code, "message": f"injected {status}"}, headers)

    def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        if self.command == "PUT" and status >= 400:
            # A file's body may be unread: this connection cannot carry another request.
            self.close_connection = True
        super().answer(status, body, headers)


def _take_error(space: workspace.Workspace, path: str) -> int | None:
    with space.lock:
        for index, (prefix, status) in enumerate(space.faults.errors):
            if path.startswith(prefix):
                del space.faults.errors[index]
                return status
    return None


@contextlib.contextmanager
def running(*, tokens: set[str], **options: Any) -> Iterator[Server]:
    """A test workspace on a free loopback port, its runs moved along every `TICK_S`; every
    run's task is killed when it stops."""
    server = Server(tokens=tokens, **options)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_S):
            server.workspace.advance()

    threading.Thread(target=tick, name="databricks-runs", daemon=True).start()
    try:
        with json_http.serving(server, "databricks"):
            yield server
    finally:
        stop.set()
        with server.workspace.lock:
            for run in server.workspace.runs.values():
                if run.process is not None and run.process.poll() is None:
                    run.process.kill()
