"""Go's ``encoding/json`` ``Marshal`` over the Go value model (the template ``json`` function)."""

from __future__ import annotations

import base64
import math
from typing import Any

from pollama.go import json_float
from pollama.template.go.strconv import _LHEX, format_float
from pollama.template.go.values import RawJSON, _go_type_name, _json_fields, _kind, _utf8

# ---------------------------------------------------------------------------------------------
# encoding/json Marshal
# ---------------------------------------------------------------------------------------------


class _JSONError(Exception):
    pass


_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        o = ord(ch)
        if o < 0x20:
            out.append("\\u00" + _LHEX[o >> 4] + _LHEX[o & 15])
        elif 0xD800 <= o <= 0xDFFF:  # invalid UTF-8 / lone surrogate
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise _JSONError(f"json: unsupported value: {format_float(f, 'g', -1)}")
    return json_float(f)


def _json_compact(raw: str) -> str:
    """Go's json.Compact with HTML escaping, applied to MarshalJSON output."""
    out: list[str] = []
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch in " \t\r\n":
            continue
        elif ch == '"':
            in_string = True
        if ch in "<>&\u2028\u2029":
            out.append(_JSON_ESCAPES[ch])
        else:
            out.append(ch)
    return "".join(out)


def _json_is_empty(v: Any) -> bool:
    kind = _kind(v)
    if kind in ("nil", "invalid"):
        return True
    if kind in ("bool", "int", "float"):
        return not v
    if kind in ("string", "slice", "map"):
        return len(v) == 0
    return False


def _json_encode(v: Any, out: list[str], depth: int) -> None:
    if depth > 1000:
        raise _JSONError("json: unsupported value: encountered a cycle")
    hook = getattr(type(v), "go_json", None)
    if callable(hook):
        v = v.go_json()
        if isinstance(v, RawJSON):
            out.append(_json_compact(str(v)))
            return
    kind = _kind(v)
    if kind in ("nil", "invalid"):
        out.append("null")
    elif kind == "bool":
        out.append("true" if v else "false")
    elif kind == "int":
        out.append(str(int(v)))
    elif kind == "float":
        out.append(_json_float(float(v)))
    elif kind == "string":
        out.append(_json_string(str(v)))
    elif isinstance(v, (bytes, bytearray)):
        out.append('"' + base64.b64encode(bytes(v)).decode() + '"')
    elif kind == "slice":
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _json_encode(e, out, depth + 1)
        out.append("]")
    elif kind == "map":
        keyed: list[tuple[str, Any]] = []
        for k, e in v.items():
            if isinstance(k, str):
                keyed.append((k, e))
            elif isinstance(k, int) and not isinstance(k, bool):
                keyed.append((str(k), e))
            else:
                raise _JSONError(f"json: unsupported type: map[{_go_type_name(k)}]interface {{}}")
        keyed.sort(key=lambda kv: _utf8(kv[0]))
        out.append("{")
        for i, (k, e) in enumerate(keyed):
            if i:
                out.append(",")
            out.append(_json_string(k))
            out.append(":")
            _json_encode(e, out, depth + 1)
        out.append("}")
    elif kind == "struct":
        out.append("{")
        first = True
        for attr, name, omitempty in _json_fields(v):
            e = getattr(v, attr, None)
            if omitempty and _json_is_empty(e):
                continue
            if not first:
                out.append(",")
            first = False
            out.append(_json_string(name))
            out.append(":")
            _json_encode(e, out, depth + 1)
        out.append("}")
    else:
        raise _JSONError(f"json: unsupported type: {_go_type_name(v)}")


def go_json(value: Any) -> str:
    """Go's ``json.Marshal`` as Ollama's ``json`` template function uses it.

    Compact output; ``<``, ``>``, ``&``, U+2028 and U+2029 escaped; ``dict`` keys sorted; struct
    objects keep their field order (see the module docstring). Like Ollama's function (which
    ignores Marshal's error) an unencodable value (NaN, a function...) gives ``""``.
    """
    out: list[str] = []
    try:
        _json_encode(value, out, 0)
    except (_JSONError, RecursionError):
        return ""
    return "".join(out)
