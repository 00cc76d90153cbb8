"""Go's standard library where pollama must match it byte for byte: `encoding/json`, time,
`strconv.ParseBool`.

JSON bytes exactly as Go's `encoding/json` writes them:
Ollama stores manifests, params, messages and config blobs with Go's encoder: compact, `<`, `>`,
`&`, U+2028 and U+2029 escaped, map keys sorted (struct fields keep their declared order, which
callers express with dict insertion order and `sort_keys=False`). Identical bytes mean identical
digests, so a layer created by pollama and by Ollama from the same input is the same blob.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                 "\u2029": "\\u2029"}


def _escape(text: str) -> str:
    for char, escaped in _HTML_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def json_float(value: float) -> str:
    """A finite float as Go's encoding/json writes it."""
    # Go: shortest round-trip digits; exponent form only below 1e-6 or from 1e21, as `1e-7`.
    # Whole numbers print as such while exact (below 2**53); above, the shortest digits are
    # padded with zeros (9.55e18 → 9550000000000000000, not the float's exact value); -0 stays.
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exp = repr(value).partition("e")
    sign = "-" if exp.startswith("-") else "+"
    return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0')}"


def dumps(value: Any, *, sort_keys: bool = True) -> str:
    """Encode `value` as Go's json.Marshal would (maps sorted unless `sort_keys=False`)."""
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        inner = ",".join(f"{dumps(str(k))}:{dumps(v, sort_keys=sort_keys)}" for k, v in items)
        return "{" + inner + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v, sort_keys=sort_keys) for v in value) + "]"
    return _escape(json.dumps(value, ensure_ascii=False))


def encode(value: Any, *, sort_keys: bool = True) -> bytes:
    """What `json.NewEncoder(w).Encode(value)` writes: the JSON plus a newline."""
    return (dumps(value, sort_keys=sort_keys) + "\n").encode()


def go_time(value: datetime) -> str:
    """RFC 3339 in local time, as Go's time.Time marshals: fraction without trailing zeros,
    `Z` for a zero offset."""
    local = value.astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        text += "." + f"{local.microsecond:06d}".rstrip("0")
    seconds = int((local.utcoffset() or timedelta()).total_seconds()) // 60 * 60
    if not seconds:
        return text + "Z"
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


_BOOL_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_BOOL_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(text: str) -> bool | None:
    """Go's `strconv.ParseBool(text)`; None where Go errors."""
    if text in _BOOL_TRUE:
        return True
    if text in _BOOL_FALSE:
        return False
    return None


_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
MAX_DURATION = (2**63 - 1) / 1e9
"""The longest Go `time.Duration` in seconds (int64 nanoseconds: about 292 years)."""


def parse_go_duration(text: str) -> float:
    """Parse a Go `time.ParseDuration` string into seconds (raises ValueError with Go's text)."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            if re.fullmatch(r"[\d.]+", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if total > MAX_DURATION:  # Go's ParseDuration overflows int64 nanoseconds
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Format seconds as Go's `time.Duration.String()` (e.g. `5m0s`, `1.5s`, `250ms`)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                text = _trim_fraction(ns / size, size)
                return ("-" if neg else "") + text + unit
    hours, rem = divmod(ns, 3600 * 10**9)
    minutes, rem = divmod(rem, 60 * 10**9)
    secs = _trim_fraction(rem / 1e9, 10**9)
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    out += f"{secs}s"
    return ("-" if neg else "") + out


def _trim_fraction(value: float, scale: int) -> str:
    digits = len(str(scale)) - 1
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(int(value))
    return text
