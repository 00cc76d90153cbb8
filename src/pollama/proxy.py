"""Which proxy a request goes through: Go's rules (`net/http.ProxyFromEnvironment`), which
Ollama's server and CLI follow, for every HTTP client of pollama.

- `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http ones (either case; the upper case wins);
  `ALL_PROXY` is not read, as in Go.
- `NO_PROXY`: comma-separated `*`, IP addresses, CIDR ranges, and host names with an optional
  port; a name matches itself and its subdomains, a leading dot its subdomains only.
- Loopback hosts (`localhost`, 127.0.0.0/8, ::1) never go through a proxy, so the CLI reaches
  its local server behind a corporate proxy.
- Proxy URLs may be `http://`, `https://`, `socks5://` or `socks5h://`; a bare `host:port`
  means http.

httpx's own environment handling differs on the last three points, so pollama's clients set
`trust_env=False` and ask `proxy_for` instead.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from pollama.errors import PollamaError

SCHEMES = ("http", "https", "socks5", "socks5h")


class ProxyError(PollamaError):
    """A proxy variable names something that is not a proxy URL pollama can use."""


def _env(name: str) -> str:
    return os.environ.get(name.upper()) or os.environ.get(name.lower()) or ""


def proxy_for(url: str) -> str | None:
    """The proxy URL for a request to `url`, or None to connect directly."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or _is_loopback(host):
        return None
    proxy = _env("https_proxy") if parts.scheme == "https" else _env("http_proxy")
    if not proxy or _exempt(host, parts.port or (443 if parts.scheme == "https" else 80)):
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    scheme = urlsplit(proxy).scheme.lower()
    if scheme not in SCHEMES or not urlsplit(proxy).hostname:
        raise ProxyError(f"invalid proxy URL {proxy!r}: use http://, https://, socks5:// "
                         "or socks5h://")
    return proxy


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _exempt(host: str, port: int) -> bool:
    """True when NO_PROXY names this host (and port)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in _env("no_proxy").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
                continue
            except ValueError:
                pass
        name, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        if name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith(f".{name}"):
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and not head.endswith(":")  # not an IPv6 address
