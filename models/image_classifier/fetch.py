"""Fetching a photo from a URL that someone else chose (a search result), safely.

Only http(s), only to public addresses: the host name is resolved first and every address it
gives must be public (no loopback, private, link-local, cloud metadata, multicast or reserved
ones); the connection then goes to that checked address (no second lookup that could answer
differently), and every redirect is checked the same way. A byte cap and a time limit bound
each download. `Policy(allow_loopback=True)` lets tests serve photos from 127.0.0.1; nothing
else turns a check off. Standard library only (no torch, no third-party HTTP client).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from shared import limits
from shared.errors import UserError

MAX_REDIRECTS = 5
USER_AGENT = "Mozilla/5.0 (compatible; fastai-course-demos image builder)"
ALLOW_LOOPBACK_ENV = "DEMO_FETCH_ALLOW_LOOPBACK"  # tests only: their photos are on 127.0.0.1


def mb(n: float) -> str:
    """Bytes for people."""
    return f"{n / 1e6:.1f} MB"


class Refused(UserError):
    """A URL this fetcher will not fetch, or a download that broke a limit."""


@dataclass(frozen=True)
class Policy:
    max_bytes: int = int(limits.BUILD_PHOTO_BYTES.value)
    timeout: float = limits.BUILD_FETCH_SECONDS.value
    allow_loopback: bool = False

    @classmethod
    def from_env(cls) -> Policy:
        allow = os.environ.get(ALLOW_LOOPBACK_ENV, "").lower() in {"1", "true", "yes"}
        return cls(allow_loopback=allow)


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public(address: str, *, allow_loopback: bool = False) -> bool:
    """Whether `address` is a public unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if allow_loopback and ip.is_loopback:
        return True
    return ip.is_global and not ip.is_multicast


def check(url: str, policy: Policy, resolver: Resolver = resolve) -> tuple[str, str, int, str]:
    """(scheme, host, port, a checked address to connect to) of `url`, or `Refused`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"only http(s) links are fetched, not {parts.scheme or 'this'}: {short(url)}")
    host = parts.hostname
    if not host:
        raise Refused(f"no host in {short(url)}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused(f"bad port in {short(url)}") from None
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):
        raise Refused(f"{host} could not be resolved") from None
    if not addresses:
        raise Refused(f"{host} could not be resolved")
    bad = [a for a in addresses if not is_public(a, allow_loopback=policy.allow_loopback)]
    if bad:  # one private answer is enough to refuse: the name points inside
        raise Refused(f"{host} is not a public address ({bad[0]})")
    return parts.scheme, host, port, addresses[0]


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to an address checked beforehand (the Host header keeps the name)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is verified against the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(
    url: str,
    policy: Policy | None = None,
    *,
    stop: threading.Event | None = None,
    resolver: Resolver = resolve,
) -> bytes:
    """The body of `url` (following checked redirects), or `Refused` saying why not."""
    policy = policy or Policy.from_env()
    deadline = time.monotonic() + policy.timeout
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port, address = check(url, policy, resolver)
        kind = _PinnedTLS if scheme == "https" else _Pinned
        conn = kind(host, port, address, timeout=max(0.5, deadline - time.monotonic()))
        try:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise Refused(f"a redirect without a target from {host}")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise Refused(f"{host} answered {response.status}")
            kind_header = (response.getheader("Content-Type") or "").split(";")[0].strip()
            if kind_header.startswith(("text/", "application/json")):
                raise Refused(f"{host} sent {kind_header}, not a photo")
            size = response.getheader("Content-Length")
            if size and size.isdigit() and int(size) > policy.max_bytes:
                raise Refused(f"the file is larger than {mb(policy.max_bytes)}")
            return _read(response, policy.max_bytes, deadline, stop)
        except (OSError, http.client.HTTPException) as e:
            raise Refused(f"{host} could not be reached ({type(e).__name__})") from None
        finally:
            conn.close()
    raise Refused(f"more than {MAX_REDIRECTS} redirects")


def _read(response, max_bytes: int, deadline: float, stop: threading.Event | None) -> bytes:
    """The body in chunks: over the byte cap, past the deadline or on stop, give up."""
    chunks, size = [], 0
    while chunk := response.read(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise Refused(f"the file is larger than {mb(max_bytes)}")
        if time.monotonic() > deadline:
            raise Refused("the download took too long")
        if stop is not None and stop.is_set():
            raise Refused("stopped")
        chunks.append(chunk)
    return b"".join(chunks)


def short(url: str, n: int = 80) -> str:
    return url if len(url) <= n else url[: n - 1] + "…"
