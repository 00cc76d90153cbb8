"""Errors, sentinels and the Go value model: how Python values read as Go values."""

from __future__ import annotations

import dataclasses
import inspect
import math
import unicodedata
from typing import Any

MAX_EXEC_DEPTH = 100000  # Go's maxExecDepth for nested {{template}} calls
# Beyond Go, which runs a template until it ends: a template comes with a request, and
# `{{range 1000000000}}` would hold the server for hours. Real prompt templates take a few
# thousand steps and write less than a context window.
MAX_EXEC_STEPS = 1_000_000  # nodes walked (range bodies once per element)
MAX_OUTPUT = 16 << 20  # characters written


# ---------------------------------------------------------------------------------------------
# Errors and sentinels
# ---------------------------------------------------------------------------------------------


class TemplateError(Exception):
    """A parse or execution error, worded like Go's ``text/template`` errors.

    ``name`` is the template name, ``line`` the 1-based line (``None`` when unknown), ``col`` the
    0-based byte column Go reports for execution errors (``None`` for parse errors: Go reports
    only the line there), ``phase`` is ``"parse"`` or ``"exec"``.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str = "",
        line: int | None = None,
        col: int | None = None,
        phase: str = "parse",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.line = line
        self.col = col
        self.phase = phase

    def __str__(self) -> str:
        return self.message


class _NoValue:
    """Go's invalid ``reflect.Value``: what a nil ``any`` becomes in a pipeline."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _NoValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _NoValue:
        return self


NO_VALUE: Any = _NoValue()
"""The "no value" of Go templates (prints ``<no value>``); never needed in input data."""


class _Missing:
    """Go's ``missingVal``: no value piped into a command."""

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class RawJSON(str):
    """JSON text returned by a ``go_json`` hook, embedded as is (compacted, HTML-escaped)."""


class _CallError(Exception):
    """An error returned by a template function: reported as ``error calling NAME: ...``."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Go value model helpers
# ---------------------------------------------------------------------------------------------


def _kind(v: Any) -> str:
    """The Go reflect kind a Python value stands for."""
    if v is NO_VALUE:
        return "invalid"
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple, bytes, bytearray)):
        return "slice"
    if isinstance(v, dict):
        return "map"
    if inspect.isroutine(v) or isinstance(v, type):
        return "func"
    return "struct"


def _go_type_name(v: Any) -> str:
    """A Go-like type name for error messages and ``%T``."""
    name = getattr(type(v), "__go_type__", None)
    if isinstance(name, str):
        return name
    kind = _kind(v)
    return {
        "invalid": "<nil>",
        "nil": "interface {}",
        "bool": "bool",
        "int": "int",
        "float": "float64",
        "string": "string",
        "slice": "[]interface {}",
        "map": "map[string]interface {}",
        "func": "func()",
    }.get(kind) or type(v).__name__


def _is_exported(name: str) -> bool:
    return bool(name) and name[0].isupper()


def _struct_attrs(obj: Any) -> list[str]:
    """Attribute names of a struct-like object, in field order."""
    spec = getattr(type(obj), "__json_fields__", None)
    if spec is not None:
        return [entry.partition(":")[0] for entry in spec]
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    d = getattr(obj, "__dict__", None)
    if d is not None:
        return [k for k in d if not k.startswith("_")]
    names: list[str] = []
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if not slot.startswith("_") and slot not in names:
                names.append(slot)
    return names


def _json_fields(obj: Any) -> list[tuple[str, str, bool]]:
    """(attribute, JSON name, omitempty) for each field JSON encodes."""
    spec = getattr(type(obj), "__json_fields__", None)
    out: list[tuple[str, str, bool]] = []
    if spec is None:
        return [(a, a, False) for a in _struct_attrs(obj) if _is_exported(a)]
    for entry in spec:
        attr, sep, tag = entry.partition(":")
        if not _is_exported(attr):
            continue
        if not sep:
            out.append((attr, attr, False))
            continue
        name, *opts = tag.split(",")
        if name == "-" and not opts:
            continue
        out.append((attr, name or attr, "omitempty" in opts))
    return out


def _indirect(v: Any) -> Any:
    """Go's indirectInterface: a nil ``any`` becomes the invalid value."""
    return NO_VALUE if v is None else v


def _truth(v: Any) -> bool:
    """Go template truthiness (``isTrue``)."""
    kind = _kind(v)
    if kind in ("invalid", "nil"):
        return False
    if kind in ("bool", "int", "float"):
        return bool(v)
    if kind in ("string", "slice", "map"):
        return len(v) > 0
    return True


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _from_utf8(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _sort_key(k: Any) -> tuple[int, Any]:
    """Order map keys like Go's internal/fmtsort for the key kinds Python dicts use."""
    kind = _kind(k)
    if kind == "bool":
        return (0, int(k))
    if kind in ("int", "float"):
        if isinstance(k, float) and math.isnan(k):
            return (1, -math.inf)
        return (1, k)
    if kind == "string":
        return (2, _utf8(k))
    if kind in ("nil", "invalid"):
        return (-1, 0)
    return (3, str(k))


def _sorted_keys(d: dict[Any, Any]) -> list[Any]:
    try:
        return sorted(d, key=_sort_key)
    except TypeError:
        return list(d)


_GO_SPACES = (  # unicode.IsSpace
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def go_trim_space(s: str) -> str:
    """Go's strings.TrimSpace (unicode.IsSpace)."""
    return s.strip(_GO_SPACES)


def _is_go_print(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    if ch == " ":
        return True
    cat = unicodedata.category(ch)
    return cat[0] in "LMNPS"
