"""Registry authentication: Ollama's key-signed bearer tokens, and HTTP basic credentials.

Nothing is sent before the registry asks: credentials are used only after a `401` with a
`WWW-Authenticate` challenge, and then in this order:

1. `~/.ollama/registries.json` (`$HOME/.ollama`), an entry for the registry's `host[:port]`
   (matched case-insensitively; a key may also be written `https://host:port`), in the shape of
   Docker's `config.json`:

       {"auths": {"registry.example.com:5000": {"username": "me", "password": "secret"},
                  "other.example.com": {"auth": "<base64 of me:secret>"}}}

2. the environment `OLLAMA_REGISTRY_USERNAME` and `OLLAMA_REGISTRY_PASSWORD` (both set), for any
   registry except Ollama's own `registry.ollama.ai`, whose token service only takes key-signed
   requests.
3. no credentials: a `Basic` challenge fails with `unauthorized: access denied`; a `Bearer`
   challenge is answered as Ollama does (REG-02), by a token request signed with the ed25519
   identity key `~/.ollama/id_ed25519` (its public half is what ollama.com and Hugging Face let
   users register).

With credentials, a `Basic` challenge is answered with basic auth, and a `Bearer` challenge by
the Docker token flow: `GET <realm>?service=..&scope=..` with basic auth, whose `token` (or
`access_token`) then goes into `Authorization: Bearer ...`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pollama.names import DEFAULT_HOST

log = logging.getLogger("pollama.registry")

KEY_NAME = "id_ed25519"
CREDENTIALS_FILE = "registries.json"


# -- identity key (CLI-40) -----------------------------------------------------------------


def key_path(home: Path) -> Path:
    return home / KEY_NAME


def ensure_keypair(home: Path) -> str | None:
    """Create `id_ed25519` (OpenSSH, 0600) and `id_ed25519.pub` (0644) if the key is missing.

    Returns the new public key line (`ssh-ed25519 AAAA...`) when one was made, else None;
    `serve` prints Ollama's `Couldn't find '<path>'. Generating new private key.` around it.
    """
    path = key_path(home)
    if path.exists():
        return None
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    public = _public_line(key)
    home.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = home / f"{KEY_NAME}.pub"
    pub.write_text(public + "\n")
    os.chmod(pub, 0o644)
    return public


def _public_line(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def load_key(home: Path) -> Ed25519PrivateKey:
    """The identity key; raises RegistryError-friendly OSError/ValueError texts when unusable."""
    key = serialization.load_ssh_private_key(key_path(home).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{key_path(home)} is not an ed25519 key")
    return key


def public_key(home: Path) -> str:
    """`ssh-ed25519 AAAA...` of the identity key."""
    return _public_line(load_key(home))


def sign(home: Path, data: bytes) -> str:
    """Ollama's signature header value: `<base64 public key blob>:<base64 ed25519 signature>`."""
    key = load_key(home)
    blob = _public_line(key).split(" ")[1]
    return f"{blob}:{base64.b64encode(key.sign(data)).decode()}"


# -- challenges ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str  # "bearer", "basic" or "" when absent
    realm: str = ""
    service: str = ""
    scope: str = ""


_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str | None) -> Challenge:
    text = (header or "").strip()
    if not text:
        return Challenge("")
    scheme, _, rest = text.partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params.get("realm", ""), params.get("service", ""),
                     params.get("scope", ""))


def token_url(challenge: Challenge, *, signed: bool) -> str:
    """The realm URL with `service`, `scope` (each) and, for signed requests, `ts` and `nonce`.

    Keys are sorted and escaped as Go's url.Values.Encode does, since the exact string is signed.
    """
    parts = urlsplit(challenge.realm)
    values = parse_qsl(parts.query, keep_blank_values=True)
    if challenge.service or signed:
        values.append(("service", challenge.service))
    scopes = challenge.scope.split(" ") if (challenge.scope or signed) else []
    values.extend(("scope", s) for s in scopes)
    if signed:
        values.append(("ts", str(int(time.time()))))
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        values.append(("nonce", nonce))
    values.sort(key=lambda kv: kv[0])  # stable: repeated keys keep their order
    query = urlencode(values, quote_via=quote_plus)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def signed_token_header(home: Path, url: str) -> str:
    """Authorization value for a token request: signs `GET,<url>,<base64(hex(sha256("")))>`."""
    empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    return sign(home, f"GET,{url},{empty}".encode())


# -- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _host_key(text: str) -> str:
    text = text.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    return text.split("/", 1)[0]


def lookup_credentials(host: str, home: Path, env: dict[str, str] | None = None) -> \
        Credentials | None:
    """Credentials for `host[:port]`, per the lookup order in this module's docstring."""
    env = dict(os.environ if env is None else env)
    found = _from_file(home / CREDENTIALS_FILE, _host_key(host))
    if found is not None:
        return found
    user = env.get("OLLAMA_REGISTRY_USERNAME", "")
    password = env.get("OLLAMA_REGISTRY_PASSWORD", "")
    if user and password and _host_key(host) != DEFAULT_HOST:
        return Credentials(user, password)
    return None


def _from_file(path: Path, host: str) -> Credentials | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable %s: %s", path, err)
        return None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _host_key(str(key)) != host or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password") is not None:
            return Credentials(str(entry["username"]), str(entry["password"]))
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                log.warning("ignoring malformed auth for %s in %s", key, path)
                continue
            return Credentials(user, password)
    return None
