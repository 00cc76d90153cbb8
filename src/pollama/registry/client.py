"""HTTP access to one repository of an OCI registry, with Ollama's request rules.

`RegistryClient.send` is Ollama's `makeRequestWithRetry`: a `401` is answered once by
authenticating (auth.py), `404` becomes RemoteNotFound (`file does not exist`), any other status
from 400 up becomes `<code>: <body>`. Redirects are followed by hand so that the Authorization
header only ever goes to the registry's own host, and so that the blob download can stop at the
first redirect to another host (a CDN) and use that URL directly (REG-04).
"""

from __future__ import annotations

import contextlib
import functools
import platform
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from pollama import __version__
from pollama.config import Config
from pollama.names import Name
from pollama.proxy import proxy_for
from pollama.registry import auth
from pollama.registry.errors import RegistryError, RemoteNotFound, Unauthorized

# Registries made for Ollama (ollama.com, hf.co) may tell clients apart by User-Agent, so the
# product token is Ollama's (the version of the Ollama snapshot whose behaviour we follow),
# with pollama named after it.
OLLAMA_COMPAT_VERSION = "0.33.0"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
USER_AGENT = (f"ollama/{OLLAMA_COMPAT_VERSION} ({_ARCH} {sys.platform}) "
              f"Python/{platform.python_version()} pollama/{__version__}")

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REDIRECT_CODES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 10
STALL_TIMEOUT = 30.0  # seconds without a byte before a transfer counts as stalled (REG-06)

TIMEOUT = httpx.Timeout(60.0, connect=30.0, read=STALL_TIMEOUT)
# After an upload's last byte a registry may take a while to answer (it stores, or hashes).
UPLOAD_TIMEOUT = httpx.Timeout(60.0, connect=30.0, read=300.0)

Body = bytes | Callable[[], AsyncIterator[bytes]] | None
Follow = Literal["all", "same-host", "none"]


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: building one reads the CA bundle (~30 ms)."""
    return httpx.create_ssl_context()


class RegistryClient:
    """One `<scheme>://<host>/v2/<namespace>/<model>/` and the auth state earned on it."""

    def __init__(self, name: Name, *, insecure: bool = False, home: Path | None = None) -> None:
        scheme = "http" if insecure else name.scheme  # REG-13: insecure rewrites to http
        self.name = name
        self.insecure = insecure
        self.host = name.host
        self.base = f"{scheme}://{name.host}"
        self.repository = name.repository
        self.home = home if home is not None else Config.from_env().home
        self.authorization: str | None = None
        self.http = httpx.AsyncClient(
            follow_redirects=False, timeout=TIMEOUT, headers={"User-Agent": USER_AGENT},
            transport=_ProxyRouting(httpx.Limits(max_connections=64,
                                                 max_keepalive_connections=32)),
            trust_env=False)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    def url(self, *path: str) -> str:
        """`<base>/v2/<namespace>/<model>/<path...>`."""
        return "/".join([self.base, "v2", self.repository, *path])

    def same_host(self, url: str) -> bool:
        return urlsplit(url).hostname == urlsplit(self.base).hostname

    async def send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                   body: Body = None, follow: Follow = "all",
                   timeout: httpx.Timeout = TIMEOUT) -> httpx.Response:
        """Send with one auth retry; returns an open streaming response (close it)."""
        for attempt in range(2):
            resp = await self._send_following(method, url, headers, body, follow, timeout)
            if resp.status_code == 401:
                challenge = auth.parse_challenge(resp.headers.get("www-authenticate"))
                await resp.aclose()
                if attempt == 0:
                    await self.authenticate(challenge, url)
                continue
            if resp.status_code == 404:
                await resp.aclose()
                raise RemoteNotFound()
            if resp.status_code >= 400:
                text = (await resp.aread()).decode("utf-8", errors="replace")
                await resp.aclose()
                raise RegistryError(f"{resp.status_code}: {text}", resp.status_code)
            return resp
        raise Unauthorized()

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                     body: Body = None, follow: Follow = "all",
                     timeout: httpx.Timeout = TIMEOUT) -> AsyncIterator[httpx.Response]:
        resp = await self.send(method, url, headers=headers, body=body, follow=follow,
                               timeout=timeout)
        try:
            yield resp
        finally:
            await resp.aclose()

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      body: Body = None, follow: Follow = "all",
                      timeout: httpx.Timeout = TIMEOUT) -> httpx.Response:
        """Send and read the whole (small) response body."""
        async with self.stream(method, url, headers=headers, body=body, follow=follow,
                               timeout=timeout) as resp:
            await resp.aread()
            return resp

    async def _send_following(self, method: str, url: str, headers: dict[str, str] | None,
                              body: Body, follow: Follow, timeout: httpx.Timeout) -> httpx.Response:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers or {})
            if self.authorization and self.same_host(current):
                sent["Authorization"] = self.authorization
            content = body() if callable(body) else body
            request = self.http.build_request(method, current, headers=sent, content=content,
                                              timeout=timeout)
            resp = await self.http.send(request, stream=True)
            location = resp.headers.get("location")
            if follow == "none" or resp.status_code not in REDIRECT_CODES or not location:
                return resp
            target = urljoin(str(resp.url), location)
            if follow == "same-host" and urlsplit(target).hostname != urlsplit(url).hostname:
                return resp
            await resp.aclose()
            if resp.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body = "GET", None
            current = target
        raise RegistryError(f"maximum redirects exceeded ({MAX_REDIRECTS}) for {url}")

    async def authenticate(self, challenge: auth.Challenge, url: str) -> None:
        """Answer a 401 challenge: basic credentials, or a bearer token (REG-02)."""
        creds = auth.lookup_credentials(self.host, self.home)
        if challenge.scheme == "basic":
            if creds is None:
                raise Unauthorized()
            self.authorization = creds.basic()
        elif challenge.scheme == "bearer":
            self.authorization = f"Bearer {await self._token(challenge, url, creds)}"
        else:
            raise Unauthorized()

    async def _token(self, challenge: auth.Challenge, url: str,
                     creds: auth.Credentials | None) -> str:
        original = urlsplit(url).netloc
        if creds is not None:
            token_url = auth.token_url(challenge, signed=False)
            realm = urlsplit(token_url)
            # Basic credentials cross plain http only to the registry's own host (any port).
            if realm.scheme != "https" and realm.hostname != urlsplit(url).hostname:
                raise RegistryError(f'realm host "{realm.netloc}" does not match original '
                                    f'host "{original}"')
            headers = {"Authorization": creds.basic()}
        else:
            token_url = auth.token_url(challenge, signed=True)
            realm_host = urlsplit(token_url).netloc
            if realm_host != original:
                raise RegistryError(f'realm host "{realm_host}" does not match original '
                                    f'host "{original}"')
            auth.ensure_keypair(self.home)  # `serve` makes it; a bare library user may not have
            headers = {"Authorization": auth.signed_token_header(self.home, token_url)}
        resp = await self.http.get(token_url, headers=headers, follow_redirects=True)
        if resp.status_code >= 400:
            text = resp.text
            raise RegistryError(f"{resp.status_code}: {text}" if text else
                                str(resp.status_code), resp.status_code)
        try:
            data = resp.json()
        except ValueError as err:
            raise RegistryError(f"bad token response: {err}") from err
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not token:
            raise Unauthorized()
        return str(token)


class _ProxyRouting(httpx.AsyncBaseTransport):
    """Sends each request through the proxy `proxy_for` names for its URL (Go's rules; the
    registry, its token service and a CDN may each get another answer)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._transports: dict[str | None, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = proxy_for(str(request.url))
        transport = self._transports.get(proxy)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(verify=ssl_context(), limits=self._limits,
                                                 proxy=proxy)
            self._transports[proxy] = transport
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn httpx's network errors into RegistryError, keeping the cause (httpx's own pattern)."""
    try:
        yield
    except httpx.HTTPError as err:
        text = str(err) or type(err).__name__
        if isinstance(err, httpx.RequestError):
            text = f'{err.request.method} "{err.request.url}": {text}'
        raise RegistryError(text) from err
