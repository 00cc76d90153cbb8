"""Which browsers and hosts may talk to the server: CORS (spec API-08) and the DNS-rebinding
Host-header guard (API-09), each an ASGI middleware doing what Ollama's does.

CORS follows gin-contrib/cors as Ollama configures it: a request without `Origin`, or whose
`Origin` is this server's own (`http://` or `https://` + its Host), is not a CORS request; any
other origin must be allowed (OLLAMA_ORIGINS, then the built-in local ones), or the request is
refused with a 403 before any route runs, so a page elsewhere cannot even make a "simple"
request; an allowed `OPTIONS` is a preflight answered with 204. Origins match exactly, or with
one `*` standing for any text.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import socket
from collections.abc import Iterable
from pathlib import Path

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUILTIN_ORIGINS = (
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)
ALLOWED_HEADERS = (
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "OpenAI-Beta",
    "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval",
    "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os",
    "x-stainless-package-version", "x-stainless-poll-helper", "x-stainless-retry-count",
    "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout",
    "x-api-key", "anthropic-version",  # beyond Ollama: the Anthropic SDK's key header
)
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_AGE = 12 * 3600  # seconds a browser may cache a preflight's answer
def _canonical_header(name: str) -> str:
    """Go's http.CanonicalHeaderKey: `x-api-key` → `X-Api-Key`."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class OriginRules:
    """The allowed origins: exact ones (compared lower-cased, as configured) and `*` patterns."""

    def __init__(self, origins: Iterable[str]) -> None:
        listed = [*origins, *BUILTIN_ORIGINS]
        self.allow_all = "*" in listed
        self.exact = {o.strip().lower() for o in listed}
        self.patterns = [tuple(o.split("*", 1)) for o in listed if "*" in o]

    def allows(self, origin: str) -> bool:
        if self.allow_all or origin in self.exact:
            return True
        return any(origin.startswith(prefix) and origin.endswith(suffix)
                   for prefix, suffix in self.patterns)


class CORS:
    """ASGI middleware: refuses foreign origins (403), answers preflights (204), and adds
    `Access-Control-Allow-Origin` to every answer to an allowed cross-origin request."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.rules = OriginRules(origins)
        self.preflight = [
            (b"access-control-allow-methods", ",".join(ALLOWED_METHODS).encode()),
            (b"access-control-allow-headers",
             ",".join(dict.fromkeys(_canonical_header(h) for h in ALLOWED_HEADERS)).encode()),
            (b"access-control-max-age", str(MAX_AGE).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin", "")
        host = headers.get("host", "")
        if not origin or origin in (f"http://{host}", f"https://{host}"):
            await self.app(scope, receive, send)  # not a cross-origin request
            return
        if not self.rules.allows(origin):
            await _empty(send, 403)
            return
        allow = [(b"access-control-allow-origin",
                  b"*" if self.rules.allow_all else origin.encode("latin-1"))]
        if scope["method"] == "OPTIONS":
            vary = [] if self.rules.allow_all else [
                (b"vary", b"Origin"), (b"vary", b"Access-Control-Request-Method"),
                (b"vary", b"Access-Control-Request-Headers")]
            await _empty(send, 204, [*self.preflight, *vary, *allow])
            return
        extra = allow if self.rules.allow_all else [(b"vary", b"Origin"), *allow]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if k.lower() != b"access-control-allow-origin"]
                message = {**message, "headers": [*kept, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _empty(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None
                 ) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"0"), *(headers or [])]})
    await send({"type": "http.response.body", "body": b""})


# -- the Host-header guard -------------------------------------------------------------------

_PRIVATE = [ipaddress.ip_network(n) for n in
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]  # Go's IsPrivate
_LOCAL_TLDS = (".localhost", ".local", ".internal")


def split_host(hostport: str) -> str:
    """The host of a Host header, as Go's net.SplitHostPort finds it (the whole value when it
    has no port)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0 and hostport[end + 1:end + 2] == ":" and ":" not in hostport[end + 2:]:
            return hostport[1:end]
        return hostport
    head, colon, _port = hostport.rpartition(":")
    if colon and ":" not in head and "[" not in head and "]" not in head:
        return head
    return hostport


def local_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of this machine's interfaces (Linux: from /proc), and its hostname's."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if line.strip() == "/32 host LOCAL" and "|--" in previous:
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.ip_address(previous.split("|--")[1].strip()))
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            with contextlib.suppress(ValueError, IndexError):
                found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    with contextlib.suppress(OSError, UnicodeError):
        for *_, address in socket.getaddrinfo(socket.gethostname(), None):
            with contextlib.suppress(ValueError):
                found.add(ipaddress.ip_address(str(address[0]).split("%")[0]))
    return found


def _allowed_ip(text: str) -> bool | None:
    """Whether an IP host is allowed; None when `text` is no IP (Go's netip.ParseAddr)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    if plain.is_loopback or any(plain in net for net in _PRIVATE
                                if net.version == plain.version):
        return True
    if ip in (ipaddress.IPv4Address(0), ipaddress.IPv6Address(0)):
        return True
    unscoped = ipaddress.ip_address(text.split("%")[0])
    return unscoped in local_addresses()


def allowed_host(hostport: str) -> bool:
    """Ollama's DNS-rebinding rule (API-09) for the Host header of a loopback-bound server."""
    host = split_host(hostport)
    by_ip = _allowed_ip(host)
    if by_ip is not None:
        return by_ip
    host = host.lower()
    if host in ("", "localhost") or host == socket.gethostname().lower():
        return True
    return host.endswith(_LOCAL_TLDS)


class HostGuard:
    """ASGI middleware for a server bound to loopback: a Host header naming anything but this
    machine is a 403 (a page on a rebinding domain reaches 127.0.0.1 under its own name); an
    allowed `OPTIONS` that CORS did not answer is a 204."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not allowed_host(Headers(scope=scope).get("host", "")):
            await _empty(send, 403)
            return
        if scope["method"] == "OPTIONS":
            await _empty(send, 204)
            return
        await self.app(scope, receive, send)
