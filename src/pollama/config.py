"""Every OLLAMA_* setting, read once from the environment into a typed, frozen object.

Parsing follows Ollama's `envconfig`: surrounding whitespace and quotes are stripped, booleans
use Go's ParseBool (an unparsable non-empty value counts as true), integers that do not parse
fall back to the default with a warning, durations accept Go duration strings or seconds.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pollama import go

log = logging.getLogger("pollama.config")

DEFAULT_PORT = 11434
FOREVER = math.inf  # keep_alive < 0: never unload

# The K/V cache types llama.cpp accepts (llama-server's --cache-type-k/v) and their bytes per
# element (a quantized block's bytes over its 32 elements). Ollama documents f16, q8_0 and
# q4_0. The quantized ones need flash attention.
KV_CACHE_BYTES: dict[str, float] = {
    "f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "f32": 4.0, "bf16": 2.0, "q4_1": 20 / 32,
    "iq4_nl": 18 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32,
}
KV_CACHE_TYPES = tuple(KV_CACHE_BYTES)
UNQUANTIZED_KV_CACHE_TYPES = ("f16", "f32", "bf16")
DEFAULT_KV_CACHE_SIZE = 4 << 30  # OLLAMA_KV_CACHE_DIR_SIZE: saved KV state on disk, at most
DEFAULT_RPC_PORT = 50052  # llama.cpp's rpc-server default, and `pollama worker`'s
_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

def _var(env: dict[str, str], key: str) -> str:
    return env.get(key, "").strip().strip("\"'").strip()


def _bool(env: dict[str, str], key: str, default: bool = False) -> bool:
    raw = _var(env, key)
    if not raw:
        return default
    # Ollama: anything non-empty that is not false counts as true
    return go.parse_bool(raw) is not False


def _optional_bool(env: dict[str, str], key: str) -> bool | None:
    """None when the variable is unset: some behaviours depend on it being set explicitly."""
    return _bool(env, key) if _var(env, key) else None


def _int(env: dict[str, str], key: str, default: int) -> int:
    raw = _var(env, key)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        log.warning("invalid environment variable, using default: %s=%r default=%d", key, raw,
                    default)
        return default


def _duration(env: dict[str, str], key: str, default: float, *, zero_is_forever: bool) -> float:
    """Seconds from a Go duration or a bare integer of seconds; negative means forever."""
    raw = _var(env, key)
    if not raw:
        return default
    try:
        seconds = float(int(raw))
    except ValueError:
        try:
            seconds = go.parse_go_duration(raw)
        except ValueError:
            log.warning("invalid %s %r, using the default", key, raw)
            return default
    if seconds < 0 or (zero_is_forever and seconds == 0):
        return FOREVER
    return seconds


def _conversations(env: dict[str, str], home: Path) -> Path | None:
    """OLLAMA_CONVERSATIONS: unset or true → `<home>/pollama.db`, 0/false/off → None (off),
    anything else is the path of the database file."""
    raw = _var(env, "OLLAMA_CONVERSATIONS")
    if not raw or go.parse_bool(raw) is True:
        return home / "pollama.db"
    if go.parse_bool(raw) is False or raw.lower() in ("off", "no"):
        return None
    return Path(raw).expanduser()


def parse_size(raw: str) -> int:
    """Bytes from `4G`, `512M`, `100K`, `1.5G`, `4GB`, `4GiB` or a bare number (binary units).
    Raises ValueError for anything else or a negative size."""
    text = raw.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = text[-1:] if text[-1:] in _SIZE_SUFFIXES else ""
    number = float(text[:len(text) - len(suffix)].strip())
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"not a size: {raw!r}")
    return int(number * _SIZE_SUFFIXES[suffix])


def _kv_cache_dir(env: dict[str, str], home: Path) -> Path | None:
    raw = _var(env, "OLLAMA_KV_CACHE_DIR")
    if not raw:
        return home / "kv-cache"
    if raw.lower() in ("0", "off", "false", "no", "none"):
        return None
    return Path(raw).expanduser()


def _kv_cache_size(env: dict[str, str]) -> int:
    raw = _var(env, "OLLAMA_KV_CACHE_DIR_SIZE")
    if not raw:
        return DEFAULT_KV_CACHE_SIZE
    try:
        return parse_size(raw)
    except ValueError:
        log.warning("invalid OLLAMA_KV_CACHE_DIR_SIZE %r, using the default (4G)", raw)
        return DEFAULT_KV_CACHE_SIZE


def parse_rpc_endpoint(raw: str) -> str:
    """`host:port` of an RPC worker (port 50052 when left out); ValueError says what is wrong.
    llama.cpp's RPC transport is IPv4 only, so an IPv6 address is refused."""
    text = raw.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(DEFAULT_RPC_PORT)
    if not host or any(c in host for c in " /[]:,"):
        raise ValueError(f"{raw!r} is not host:port (llama.cpp's RPC is IPv4 only)")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{raw!r} has no valid port")
    return f"{host}:{int(port_text)}"


def _rpc_servers(env: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """OLLAMA_RPC_SERVERS: the workers, and what is wrong with the value."""
    raw = _var(env, "OLLAMA_RPC_SERVERS")
    endpoints: list[str] = []
    for item in (i for i in raw.split(",") if i.strip()):
        try:
            endpoints.append(parse_rpc_endpoint(item))
        except ValueError as err:
            return (), f"OLLAMA_RPC_SERVERS: {err}"
    if len(set(endpoints)) != len(endpoints):
        return (), "OLLAMA_RPC_SERVERS names a worker twice"
    return tuple(endpoints), ""


def _rpc_split(env: dict[str, str], servers: tuple[str, ...]) -> tuple[tuple[float, ...], str]:
    """OLLAMA_RPC_SPLIT: this machine's share of the layers, then each worker's."""
    raw = _var(env, "OLLAMA_RPC_SPLIT")
    if not raw:
        return (), ""
    if not servers:
        return (), "OLLAMA_RPC_SPLIT is set, but OLLAMA_RPC_SERVERS names no worker"
    try:
        shares = tuple(float(x) for x in raw.split(","))
    except ValueError:
        shares = ()
    if not shares or any(not math.isfinite(x) or x < 0 for x in shares) or sum(shares) <= 0:
        return (), (f"OLLAMA_RPC_SPLIT={raw!r} is not a list of shares such as 1,1,2 "
                    "(non-negative numbers, not all zero)")
    if len(shares) != len(servers) + 1:
        return (), (f"OLLAMA_RPC_SPLIT has {len(shares)} shares; it takes one for this machine "
                    f"and one per OLLAMA_RPC_SERVERS worker ({len(servers) + 1})")
    return shares, ""


@dataclass(frozen=True)
class Host:
    """Where the server listens and where clients connect (OLLAMA_HOST)."""

    scheme: str
    host: str  # may be empty: bind all interfaces
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        """Base URL a client uses; an empty or unspecified bind host is reached on loopback."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def bind_host(self) -> str:
        return self.host or "0.0.0.0"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach the listener (`localhost`, 127.0.0.0/8, ::1)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.bind_host).is_loopback
        except ValueError:
            return False


def parse_host(raw: str) -> Host:
    """Parse OLLAMA_HOST as Ollama does: `host`, `:port`, `host:port`, `scheme://host:port/path`."""
    raw = raw.strip().strip("\"'").strip()
    if not raw:
        return Host("http", "127.0.0.1", DEFAULT_PORT)
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    default_port = DEFAULT_PORT
    if sep and scheme == "http":
        default_port = 80
    elif sep and scheme == "https":
        default_port = 443
    if not sep and rest == "ollama.com":
        return Host("https", "ollama.com", 443)
    hostport, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/") if slash else ""
    parsed = urlsplit(f"//{hostport}")
    try:
        port = parsed.port
    except ValueError:
        log.warning("invalid port in OLLAMA_HOST %r, using default port %d", raw, default_port)
        port = None
    host = parsed.hostname or ""
    if hostport.startswith("[") and not host:
        host = hostport.strip("[]")
    if port is None:
        if hostport.startswith(":") and hostport[1:].isdigit():
            port = int(hostport[1:])
        else:
            port = default_port
    return Host(scheme, host, port, path)


@dataclass(frozen=True)
class Config:
    """The settings pollama reads; each field names its variable and Ollama's default."""

    host: Host  # OLLAMA_HOST
    models: Path  # OLLAMA_MODELS, default ~/.ollama/models
    keep_alive: float  # OLLAMA_KEEP_ALIVE in seconds (inf = forever), default 5m
    num_parallel: int  # OLLAMA_NUM_PARALLEL, 0 = auto (4 when memory allows, else 1)
    max_loaded_models: int  # OLLAMA_MAX_LOADED_MODELS, 0 = auto (3 on CPU)
    max_queue: int  # OLLAMA_MAX_QUEUE, default 512
    origins: tuple[str, ...]  # OLLAMA_ORIGINS, extra CORS origins
    context_length: int  # OLLAMA_CONTEXT_LENGTH, 0 = auto (4096 on CPU)
    flash_attention: bool | None  # OLLAMA_FLASH_ATTENTION, None = auto
    kv_cache_type: str  # OLLAMA_KV_CACHE_TYPE, "" = f16
    noprune: bool  # OLLAMA_NOPRUNE
    debug: int  # OLLAMA_DEBUG: 0 = INFO, 1 = DEBUG, 2 = TRACE
    load_timeout: float  # OLLAMA_LOAD_TIMEOUT seconds (inf = none), default 5m
    nohistory: bool  # OLLAMA_NOHISTORY
    go_template: bool | None  # OLLAMA_GO_TEMPLATE, None = not set explicitly
    max_transfer_streams: int  # OLLAMA_MAX_TRANSFER_STREAMS, default 4
    repack: bool | None = None  # OLLAMA_REPACK, None = probe the CPU once (engine/cpu_probe.py)
    home: Path = field(default_factory=lambda: Path.home() / ".ollama")
    # Beyond Ollama: bearer-token auth (OLLAMA_API_KEYS, OLLAMA_API_KEYS_FILE), serving beyond
    # loopback without keys (OLLAMA_ALLOW_INSECURE), Prometheus metrics (OLLAMA_METRICS).
    api_keys: tuple[str, ...] = ()
    api_keys_error: str = ""  # why OLLAMA_API_KEYS_FILE could not be read
    allow_insecure: bool = False
    metrics: bool = True
    # OLLAMA_CONVERSATIONS: the SQLite file of stored conversations, default
    # ~/.ollama/pollama.db; None when set to 0/false/off (the server stores nothing)
    conversations: Path | None = None
    # OLLAMA_KV_CACHE_DIR: where runners save prompts' KV state (None = off), default
    # <home>/kv-cache; OLLAMA_KV_CACHE_DIR_SIZE: its size limit in bytes, default 4G.
    kv_cache_dir: Path | None = None
    kv_cache_size: int = DEFAULT_KV_CACHE_SIZE
    # OLLAMA_RPC_SERVERS: RPC workers (`pollama worker`) runners split layers over;
    # OLLAMA_RPC_SPLIT: the shares of this machine and each worker (default: free memory).
    rpc_servers: tuple[str, ...] = ()
    rpc_split: tuple[float, ...] = ()
    rpc_error: str = ""  # what is wrong with OLLAMA_RPC_SERVERS / OLLAMA_RPC_SPLIT

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("HOME") or Path.home()) / ".ollama"
        models = _var(env, "OLLAMA_MODELS")
        origins = tuple(o.strip() for o in _var(env, "OLLAMA_ORIGINS").split(",") if o.strip())
        debug_raw = _var(env, "OLLAMA_DEBUG")
        debug = int(debug_raw) if debug_raw.isdigit() else 1 if _bool(env, "OLLAMA_DEBUG") else 0
        go_template = _optional_bool(env, "OLLAMA_GO_TEMPLATE")
        flash = _optional_bool(env, "OLLAMA_FLASH_ATTENTION")
        keys, keys_error = _api_keys(env)
        rpc_servers, rpc_error = _rpc_servers(env)
        rpc_split, split_error = _rpc_split(env, rpc_servers)
        return cls(
            host=parse_host(_var(env, "OLLAMA_HOST")),
            models=Path(models).expanduser() if models else home / "models",
            keep_alive=_duration(env, "OLLAMA_KEEP_ALIVE", 300.0, zero_is_forever=False),
            num_parallel=max(_int(env, "OLLAMA_NUM_PARALLEL", 0), 0),
            max_loaded_models=max(_int(env, "OLLAMA_MAX_LOADED_MODELS", 0), 0),
            max_queue=_int(env, "OLLAMA_MAX_QUEUE", 512),
            origins=origins,
            context_length=max(_int(env, "OLLAMA_CONTEXT_LENGTH", 0), 0),
            flash_attention=flash,
            kv_cache_type=_var(env, "OLLAMA_KV_CACHE_TYPE").lower(),
            noprune=_bool(env, "OLLAMA_NOPRUNE"),
            debug=debug,
            load_timeout=_duration(env, "OLLAMA_LOAD_TIMEOUT", 300.0, zero_is_forever=True),
            nohistory=_bool(env, "OLLAMA_NOHISTORY"),
            go_template=go_template,
            max_transfer_streams=_int(env, "OLLAMA_MAX_TRANSFER_STREAMS", 4),
            repack=_optional_bool(env, "OLLAMA_REPACK"),
            home=home,
            api_keys=keys,
            api_keys_error=keys_error,
            allow_insecure=_bool(env, "OLLAMA_ALLOW_INSECURE"),
            metrics=_optional_bool(env, "OLLAMA_METRICS") is not False,
            conversations=_conversations(env, home),
            kv_cache_dir=_kv_cache_dir(env, home),
            kv_cache_size=_kv_cache_size(env),
            rpc_servers=rpc_servers,
            rpc_split=rpc_split,
            rpc_error=rpc_error or split_error,
        )

    @property
    def flash_attention_mode(self) -> str:
        """`on`, `off`, or `auto` when OLLAMA_FLASH_ATTENTION is unset (ENV-09)."""
        if self.flash_attention is None:
            return "auto"
        return "on" if self.flash_attention else "off"

    def serve_errors(self) -> list[str]:
        """Settings `serve` cannot run with, each a sentence saying how to fix it."""
        errors = []
        kv = self.kv_cache_type or "f16"
        if kv not in KV_CACHE_TYPES:
            errors.append(f"OLLAMA_KV_CACHE_TYPE={kv!r} is not a K/V cache type: use f16, q8_0 "
                          f"or q4_0 (llama.cpp also takes {', '.join(KV_CACHE_TYPES[3:])})")
        elif kv not in UNQUANTIZED_KV_CACHE_TYPES and self.flash_attention is False:
            errors.append(f"OLLAMA_KV_CACHE_TYPE={kv} needs flash attention, but "
                          "OLLAMA_FLASH_ATTENTION turns it off: unset one of them")
        errors += origin_problems(self.origins)
        if self.rpc_error:
            errors.append(self.rpc_error)
        if self.api_keys_error:
            errors.append(self.api_keys_error)
        elif not self.api_keys and not self.allow_insecure and not self.host.is_loopback:
            errors.append(f"OLLAMA_HOST={self.host.bind_host}:{self.host.port} lets other "
                          "machines reach the server, and no API key protects it: set "
                          "OLLAMA_API_KEYS (or OLLAMA_API_KEYS_FILE), or OLLAMA_ALLOW_INSECURE=1 "
                          "to serve without authentication")
        return errors


# An OLLAMA_ORIGINS entry without a wildcard must name one of these schemes (gin-contrib/cors
# with browser extensions allowed, as Ollama configures it; Ollama does not start otherwise).
ORIGIN_SCHEMES = ("http://", "https://", "chrome-extension://", "safari-extension://",
                  "moz-extension://", "ms-browser-extension://")


def origin_problems(origins: tuple[str, ...]) -> list[str]:
    """Why OLLAMA_ORIGINS entries cannot work, one sentence each (empty: all fine)."""
    problems = []
    for origin in origins:
        if origin.count("*") > 1:
            problems.append(f"OLLAMA_ORIGINS entry {origin!r} has more than one '*': only one "
                            "is allowed")
        elif "*" not in origin and not origin.lower().startswith(ORIGIN_SCHEMES):
            problems.append(f"OLLAMA_ORIGINS entry {origin!r} is not an origin: give its scheme "
                            f"(e.g. http://{origin}) or use a '*' wildcard")
    return problems


def _api_keys(env: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """The accepted API keys: OLLAMA_API_KEYS (comma-separated) and OLLAMA_API_KEYS_FILE (one
    per line, `#` comments), and why the file could not be read."""
    keys = [k.strip() for k in _var(env, "OLLAMA_API_KEYS").split(",")]
    path = _var(env, "OLLAMA_API_KEYS_FILE")
    if path:
        try:
            lines = Path(path).expanduser().read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            return (), f"OLLAMA_API_KEYS_FILE={path} cannot be read: {err}"
        keys += [line.split("#", 1)[0].strip() for line in lines]
        if not any(keys):
            return (), f"OLLAMA_API_KEYS_FILE={path} holds no key"
    return tuple(dict.fromkeys(k for k in keys if k)), ""


# One line per variable, printed by `pollama serve --help` as Ollama's appendEnvDocs does.
SERVE_ENV_DOCS: dict[str, str] = {
    "OLLAMA_DEBUG": "Show additional debug information (e.g. OLLAMA_DEBUG=1)",
    "OLLAMA_HOST": "IP Address for the ollama server (default 127.0.0.1:11434)",
    "OLLAMA_CONTEXT_LENGTH": "Context length to use unless otherwise specified (default: 4096)",
    "OLLAMA_KEEP_ALIVE": "The duration that models stay loaded in memory (default \"5m\")",
    "OLLAMA_MAX_LOADED_MODELS": "Maximum number of loaded models per GPU",
    "OLLAMA_MAX_QUEUE": "Maximum number of queued requests",
    "OLLAMA_MODELS": "The path to the models directory",
    "OLLAMA_NUM_PARALLEL": "Maximum number of parallel requests",
    "OLLAMA_NOPRUNE": "Do not prune model blobs on startup",
    "OLLAMA_ORIGINS": "A comma separated list of allowed origins",
    "OLLAMA_FLASH_ATTENTION": "Enabled flash attention",
    "OLLAMA_KV_CACHE_TYPE": "Quantization type for the K/V cache (default: f16)",
    "OLLAMA_REPACK":
        "Load weights into llama.cpp's repacked/AMX layouts (default: probe the CPU once)",
    "OLLAMA_LOAD_TIMEOUT":
        "How long to allow model loads to stall before giving up (default \"5m\")",
    "OLLAMA_API_KEYS": "Comma separated API keys every request must present (Bearer or x-api-key)",
    "OLLAMA_API_KEYS_FILE": "A file of API keys, one per line",
    "OLLAMA_ALLOW_INSECURE": "Serve beyond loopback without API keys",
    "OLLAMA_METRICS": "Prometheus metrics at /metrics (default on; 0 turns them off)",
    "OLLAMA_CONVERSATIONS":
        "SQLite file of stored conversations (default ~/.ollama/pollama.db; 0 turns them off)",
    "OLLAMA_KV_CACHE_DIR":
        "Where prompts' KV state is saved to resume them (default ~/.ollama/kv-cache; 0 = off)",
    "OLLAMA_KV_CACHE_DIR_SIZE":
        "Size limit of the saved KV state, least recently used out (default: 4G)",
    "OLLAMA_RPC_SERVERS":
        "RPC workers (`pollama worker`) to split models over, e.g. host1:50052,host2:50052",
    "OLLAMA_RPC_SPLIT":
        "Layer shares of this machine then each worker, e.g. 1,1,2 (default: by free memory)",
}
CLIENT_ENV_DOCS: dict[str, str] = {
    "OLLAMA_HOST": "IP Address for the ollama server (default 127.0.0.1:11434)",
    "OLLAMA_API_KEY": "The API key sent to a server that requires one",
}
RUN_ENV_DOCS: dict[str, str] = {
    "OLLAMA_EDITOR": "Path to an editor to use for interactive prompt editing",
    "OLLAMA_HOST": "IP Address for the ollama server (default 127.0.0.1:11434)",
    "OLLAMA_NOHISTORY": "Do not preserve readline history",
    "OLLAMA_API_KEY": "The API key sent to a server that requires one",
}
