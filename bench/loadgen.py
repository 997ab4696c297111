"""Throughput with wrk: write its Lua script, run it for a fixed time, read its report.

wrk keeps every connection busy (closed loop), so its requests/sec is the most a server answers
with that many connections; its latency percentiles come from `--latency`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import subprocess

from payloads import CHAT_TEMPLATE

INSTALL_HINT = "wrk is not installed; on Debian or Ubuntu: sudo apt-get install -y wrk"
# Slow servers answer late rather than fail: their latency then shows in the percentiles.
_REQUEST_TIMEOUT = "10s"
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class WrkMissing(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Load:
    duration_s: int
    connections: int
    threads: int


@dataclasses.dataclass(frozen=True)
class Throughput:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int
    """Answers other than 2xx/3xx, plus connect, read, write and timeout errors."""


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(INSTALL_HINT)
    return path


def wrk_version(wrk: str) -> str:
    # `wrk -v` prints its version before the usage text and exits with 1.
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
    first_line = output.splitlines()[0] if output else "wrk (unknown version)"
    return first_line.split(" Copyright")[0].strip()


def same_request_script(headers: dict[str, str]) -> str:
    """A script that sends one fixed request, again and again (the cheapest for wrk)."""
    body = CHAT_TEMPLATE % "0"
    return f'wrk.method = "POST"\n{_lua_headers(headers)}wrk.body = {_lua_string(body)}\n'


def distinct_requests_script(headers: dict[str, str], tag: str) -> str:
    """A script whose every request differs: `tag`, the thread's number and a counter."""
    return f"""wrk.method = "POST"
{_lua_headers(headers)}local template = {_lua_string(CHAT_TEMPLATE)}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
thread_number = 0
counter = 0
function request()
  counter = counter + 1
  local variant = {_lua_string(tag)} .. "-" .. thread_number .. "-" .. counter
  return wrk.format(nil, nil, nil, string.format(template, variant))
end
"""


def run(wrk: str, url: str, script: pathlib.Path, load: Load) -> Throughput:
    argv = [wrk, "--latency", "--timeout", _REQUEST_TIMEOUT, "-s", str(script)]
    argv += [f"-t{load.threads}", f"-c{load.connections}", f"-d{load.duration_s}s", url]
    completed = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=load.duration_s + 60
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse(completed.stdout)


def parse(report: str) -> Throughput:
    """Reads the figures out of wrk's text report (wrk 4.x with --latency)."""
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        failed += sum(int(count) for count in socket_errors.groups())
    return Throughput(
        requests_per_s=float(_find(r"Requests/sec:\s+([\d.]+)", report)),
        p50_ms=_percentile_ms(report, 50),
        p99_ms=_percentile_ms(report, 99),
        requests=int(_find(r"(\d+) requests in", report)),
        failed=failed,
    )


def _percentile_ms(report: str, percent: int) -> float:
    match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", report, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percent}% latency in wrk's report:\n{report}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def _find(pattern: str, report: str) -> str:
    match = re.search(pattern, report)
    if match is None:
        raise ValueError(f"no {pattern!r} in wrk's report:\n{report}")
    return match.group(1)


def _lua_headers(headers: dict[str, str]) -> str:
    return "".join(
        f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}\n"
        for name, value in headers.items()
    )


def _lua_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
