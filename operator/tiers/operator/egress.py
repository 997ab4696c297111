"""Where the operator may connect on a spec's say: the one rule for every URL a spec names
(`spec.notification.webhookURL`, `spec.databricks.host`), checked twice.

The URL comes from whoever may write the object, and the call leaves from the operator's pod,
often with a token, so its host must be a public address. Loopback, link-local (the cloud
metadata service), private, shared and reserved addresses are refused unless they fall in a
network the cluster admin allowed (chart value `notifications.allowedNetworks`, environment
variable `TIERS_WEBHOOK_ALLOWED_NETWORKS`: CIDRs, comma- or space-separated), e.g. an in-cluster
relay's Service range.

- `refusal(url, allowed)`, before any call: every address the host resolves to must pass, for a
  clear condition that names the field before anything is sent.
- `held(what, allowed)`, around the calls: every TCP connection made inside it is checked on
  the address the socket is about to connect to, before the connection is opened. A name that
  answers a public address to the first lookup and 169.254.169.254 to the client's own (DNS
  rebinding) is refused there, raising `NotAllowed`. It is a Python audit hook on
  `socket.connect` (installed once, idle outside `held`), so it holds whatever client connects:
  databricks-sdk's `requests` sessions, including the one its `Config` makes for itself, and
  httpx. `held` is a context variable: it covers the task that entered it, the tasks that task
  starts and the threads it calls through `asyncio.to_thread`, and no other. (It needs
  asyncio's own event loop: uvloop's sockets connect in C, past the hook.) Through a proxy
  (HTTPS_PROXY), the address checked is the proxy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import ipaddress
import os
import socket
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "ALLOWED_NETWORKS_ENV",
    "Guard",
    "Network",
    "NotAllowed",
    "Resolve",
    "allowed_networks",
    "held",
    "refusal",
    "refused_address",
]

ALLOWED_NETWORKS_ENV = "TIERS_WEBHOOK_ALLOWED_NETWORKS"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[list[str]]]


class NotAllowed(Exception):
    """A connection refused by `held`. Not an OSError, so that no client takes it for a network
    glitch and tries again or another address: the call fails at once."""


@dataclasses.dataclass
class Guard:
    """The rule `held` applies; `refused` says why a connection was refused, where one was (for
    a client that wraps the exception beyond recognition)."""

    what: str
    """Names the URL in a refusal: the field and its value, or the host."""
    allowed: tuple[Network, ...]
    refused: str | None = None


_guard: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("egress_guard", default=None)


def allowed_networks(environ: Mapping[str, str] = os.environ) -> tuple[Network, ...]:
    """The networks besides public ones the operator may call on a spec's say
    (`TIERS_WEBHOOK_ALLOWED_NETWORKS`). A malformed entry is an error at start-up, not a
    silently wider or narrower list."""
    entries = environ.get(ALLOWED_NETWORKS_ENV, "").replace(",", " ").split()
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as error:
        raise ValueError(f"{ALLOWED_NETWORKS_ENV}: {error}") from None


def refused_address(address: str, allowed: Iterable[Network]) -> str | None:
    """Why the operator may not call `address`, or None when it may: a public address, or one
    inside an allowed network."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0") aside
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global or any(ip in network for network in allowed):
        return None
    return (
        f"{ip} is not a public address ({_kind(ip)}); the operator calls other addresses"
        " (webhooks, Databricks hosts) only inside notifications.allowedNetworks"
        f" ({ALLOWED_NETWORKS_ENV})"
    )


def _kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local, where the cloud metadata service is"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip in ipaddress.ip_network("100.64.0.0/10"):
        return "shared, carrier-grade NAT"
    if ip.is_private:
        return "private"
    return "reserved"


async def refusal(
    url: str, allowed: Iterable[Network], *, resolve: Resolve | None = None
) -> str | None:
    """Why the operator may not call `url`, or None: every address its host resolves to must
    pass `refused_address`. The connection itself is checked again under `held`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # ValueError: a port out of range or not a number
    except ValueError as error:
        return f"{url!r} is not an http(s) URL with a host: {error}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host"
    try:
        addresses = await (resolve or _resolve)(
            parts.hostname, port or (443 if parts.scheme == "https" else 80)
        )
    except (OSError, UnicodeError) as error:  # UnicodeError: a name IDNA cannot encode
        return f"{parts.hostname} does not resolve: {error}"
    allowed = tuple(allowed)
    for address in addresses:
        if (why := refused_address(address, allowed)) is not None:
            return f"{parts.hostname} resolves to {why}"
    return None


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@contextlib.contextmanager
def held(what: str, allowed: Iterable[Network]) -> Iterator[Guard]:
    """Every connection made inside goes to a public address or one in `allowed`; any other
    raises `NotAllowed` ("<what>: connecting to <address> is not a public address (…)") before
    the socket connects."""
    _install()
    guard = Guard(what, tuple(allowed))
    token = _guard.set(guard)
    try:
        yield guard
    finally:
        _guard.reset(token)


@functools.cache
def _install() -> None:
    sys.addaudithook(_audit)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    guard = _guard.get()
    if guard is None:
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    why = refused_address(str(address[0]), guard.allowed)
    if why is not None:
        guard.refused = f"{guard.what}: connecting to {why}"
        raise NotAllowed(guard.refused)
