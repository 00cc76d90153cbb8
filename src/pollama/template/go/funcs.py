"""The template functions: Go's built-ins and Ollama's extra functions."""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
from collections.abc import Callable
from typing import Any

from pollama.template.go.fmt import _has_stringer, go_sprint, go_sprintf, go_sprintln
from pollama.template.go.jsonenc import go_json
from pollama.template.go.values import (
    NO_VALUE,
    _CallError,
    _from_utf8,
    _go_type_name,
    _indirect,
    _is_go_print,
    _kind,
    _truth,
    _utf8,
)

# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Func:
    """A template function. Parameter kinds: ``V`` (Go reflect.Value: gets the value as is),
    ``A`` (Go ``any``: a missing value arrives as ``None``), ``S`` (Go ``string``)."""

    impl: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None


class _Byte(int):
    """A byte of a string (what ``index`` returns for strings): Go's uint8."""

    __go_type__ = "uint8"


class _IfaceIndex:
    """A slice index whose static Go type is interface {} (Go's slice rejects it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _index_arg(index: Any, cap: int) -> int:
    if isinstance(index, _IfaceIndex):
        raise _CallError("cannot index slice/array with type interface {}")
    kind = _kind(index)
    if kind == "int":
        x = int(index)
    elif kind == "invalid":
        raise _CallError("cannot index slice/array with nil")
    else:
        raise _CallError(f"cannot index slice/array with type {_go_type_name(index)}")
    if x < 0 or x > cap:
        raise _CallError(f"index out of range: {x}")
    return x


def _fn_index(item: Any, *indexes: Any) -> Any:
    item = _indirect(item)
    if item is NO_VALUE:
        raise _CallError("index of untyped nil")
    for index in indexes:
        index = _indirect(index)
        if item is None:
            raise _CallError("index of nil pointer")
        kind = _kind(item)
        if kind in ("slice", "string"):
            seq = _utf8(item) if kind == "string" else item
            x = _index_arg(index, len(seq))
            if x == len(seq):
                what = "string" if kind == "string" else "slice"
                raise _CallError(f"reflect: {what} index out of range")
            item = _Byte(seq[x]) if kind == "string" else seq[x]
        elif kind == "map":
            if index is NO_VALUE:
                raise _CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise _CallError(f"value has type {_go_type_name(index)}; should be string")
            item = item.get(index)
        else:
            raise _CallError(f"can't index item of type {_go_type_name(item)}")
    return item


def _fn_slice(item: Any, *indexes: Any) -> Any:
    item = _indirect(item)
    if item is NO_VALUE:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    kind = _kind(item)
    if kind == "string":
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        seq: Any = _utf8(item)
    elif kind == "slice":
        seq = item
    else:
        raise _CallError(f"can't slice item of type {_go_type_name(item)}")
    idx = [0, len(seq), 0]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(_indirect(index), len(seq))
    if idx[0] > idx[1]:
        raise _CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _CallError(f"invalid slice index: {idx[1]} > {idx[2]}")
    part = seq[idx[0] : idx[1]]
    if kind == "string":
        return _from_utf8(part)
    if type(item) not in (list, tuple):
        try:
            return type(item)(part)
        except Exception:
            return list(part)
    return part


def _fn_len(item: Any) -> int:
    if item is None:
        raise _CallError("len of nil pointer")
    if item is NO_VALUE:
        raise _CallError("reflect: call of reflect.Value.Type on zero Value")
    kind = _kind(item)
    if kind == "string":
        return len(_utf8(item))
    if kind in ("slice", "map"):
        return len(item)
    raise _CallError(f"len of type {_go_type_name(item)}")


def _fn_not(v: Any) -> bool:
    return not _truth(v)


_BASIC = ("bool", "int", "float", "string")


def _basic_kind(v: Any) -> str:
    kind = _kind(v)
    return kind if kind in _BASIC else "invalid"


def _fn_eq(arg1: Any, *arg2: Any) -> bool:
    a = _indirect(arg1)
    if not arg2:
        raise _CallError("missing argument for comparison")
    k1 = _basic_kind(a)
    for b in arg2:
        b = _indirect(b)
        k2 = _basic_kind(b)
        if k1 != k2:
            if a is not NO_VALUE and b is not NO_VALUE:
                raise _CallError("incompatible types for comparison")
            truth = False
        elif k1 != "invalid":
            truth = a == b
        else:
            ka, kb = _kind(a), _kind(b)
            if ka != kb and "invalid" not in (ka, kb):
                raise _CallError(
                    f"non-comparable types {go_sprintf('%s', a)}: {_go_type_name(a)}, "
                    f"{_go_type_name(b)}: {go_sprint(b)}"
                )
            if a is NO_VALUE or b is NO_VALUE:
                truth = a is b
            elif kb in ("slice", "map", "func"):
                raise _CallError(f"non-comparable type {go_sprintf('%s', b)}: {_go_type_name(b)}")
            else:
                truth = a is b or a == b
        if truth:
            return True
    return False


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _fn_lt(arg1: Any, arg2: Any) -> bool:
    a, b = _indirect(arg1), _indirect(arg2)
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 == "invalid" or k2 == "invalid":
        raise _CallError("invalid type for comparison")
    if k1 != k2:
        raise _CallError("incompatible types for comparison")
    if k1 == "bool":
        raise _CallError("invalid type for comparison")
    if k1 == "string":
        return _utf8(a) < _utf8(b)
    return a < b


def _fn_le(a: Any, b: Any) -> bool:
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a: Any, b: Any) -> bool:
    return not _fn_le(a, b)


def _fn_ge(a: Any, b: Any) -> bool:
    return not _fn_lt(a, b)


def _eval_args(args: tuple[Any, ...]) -> str:
    """text/template's evalArgs: Sprint, with nil operands shown as ``<no value>``."""
    if len(args) == 1 and isinstance(args[0], str) and not _has_stringer(args[0]):
        return args[0]
    return go_sprint(*("<no value>" if a is None or a is NO_VALUE else a for a in args))


_HTML_ESCAPES = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _fn_html(*args: Any) -> str:
    return "".join(_HTML_ESCAPES.get(c, c) for c in _eval_args(args))


_JS_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _fn_js(*args: Any) -> str:
    out = []
    for c in _eval_args(args):
        o = ord(c)
        if c in _JS_ESCAPES:
            out.append(_JS_ESCAPES[c])
        elif o < 0x20:
            out.append("\\u00" + format(o, "02X"))
        elif o < 0x80 or _is_go_print(c):
            out.append(c)
        else:
            out.append("\\u" + format(o, "04X"))
    return "".join(out)


def _fn_urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_utf8(_eval_args(args)), safe="")


def _fn_call(fn: Any, *args: Any) -> Any:
    fn = _indirect(fn)
    if fn is NO_VALUE:
        raise _CallError("call of nil")
    if not callable(fn) or _kind(fn) != "func":
        raise _CallError(f"non-function of type {_go_type_name(fn)}")
    try:
        return fn(*(None if a is NO_VALUE else a for a in args))
    except _CallError:
        raise
    except Exception as e:
        raise _CallError(str(e)) from e


def _today() -> datetime.date:
    """The local date (Go's time.Now()); tests may replace it."""
    return datetime.date.today()


def _fn_current_date(*_args: str) -> str:
    return _today().strftime("%Y-%m-%d")


def _fn_yesterday_date(*_args: str) -> str:
    return (_today() - datetime.timedelta(days=1)).strftime("%Y-%m-%d")


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def _ts_type(prop: Any) -> str:
    """api.ToolProperty.ToTypeScriptType for an object with ``AnyOf`` and ``Type`` fields."""
    any_of = getattr(prop, "AnyOf", None) or []
    if any_of:
        return " | ".join(_ts_type(p) for p in any_of)
    types = getattr(prop, "Type", None) or []
    if isinstance(types, str):
        types = [types]
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def _fn_to_typescript_type(v: Any) -> str:
    method = getattr(v, "to_typescript_type", None)
    if callable(method):
        return str(method())
    if _kind(v) == "struct" and (hasattr(v, "Type") or hasattr(v, "AnyOf")):
        return _ts_type(v)
    return "any"


def _fn_and_or(*_args: Any) -> Any:  # pragma: no cover - evaluated lazily by the executor
    raise AssertionError("unreachable")


_BUILTINS: dict[str, _Func] = {
    "and": _Func(_fn_and_or, ("V",), "V"),
    "or": _Func(_fn_and_or, ("V",), "V"),
    "not": _Func(_fn_not, ("V",)),
    "call": _Func(_fn_call, ("V",), "V"),
    "html": _Func(_fn_html, (), "A"),
    "index": _Func(_fn_index, ("V",), "V"),
    "slice": _Func(_fn_slice, ("V",), "V"),
    "js": _Func(_fn_js, (), "A"),
    "len": _Func(_fn_len, ("V",)),
    "print": _Func(go_sprint, (), "A"),
    "printf": _Func(go_sprintf, ("S",), "A"),
    "println": _Func(go_sprintln, (), "A"),
    "urlquery": _Func(_fn_urlquery, (), "A"),
    "eq": _Func(_fn_eq, ("V",), "V"),
    "ge": _Func(_fn_ge, ("V", "V")),
    "gt": _Func(_fn_gt, ("V", "V")),
    "le": _Func(_fn_le, ("V", "V")),
    "lt": _Func(_fn_lt, ("V", "V")),
    "ne": _Func(_fn_ne, ("V", "V")),
}

_OLLAMA_FUNCS: dict[str, _Func] = {
    "json": _Func(go_json, ("A",)),
    "currentDate": _Func(_fn_current_date, (), "S"),
    "yesterdayDate": _Func(_fn_yesterday_date, (), "S"),
    "toTypeScriptType": _Func(_fn_to_typescript_type, ("A",)),
}
