"""A Go ``text/template`` interpreter written in pure Python.

Ollama renders prompts with Go's ``text/template`` package (option ``missingkey=zero``, plus the
functions ``json``, ``currentDate``, ``yesterdayDate`` and ``toTypeScriptType``). No maintained
Python library implements that language -- the Jinja-style engines differ in syntax *and* in
semantics (Go's truthiness, ``print`` spacing, ``fmt`` number formatting, sorted map ranges,
``<no value>``...) -- so this module is written by hand. It follows the behaviour of Go's
``text/template``, ``text/template/parse``, ``fmt`` and ``encoding/json`` packages so that a
template and its data render to the same bytes as in Ollama.

Public API
----------
``Template.parse(text, name="")`` parses (raises ``TemplateError``), ``Template.execute(data)``
renders. Helpers for Ollama's renderer: ``Template.vars()`` / ``references(name)`` (TPL-02),
``with_appended(node)`` + ``response_action()`` (the auto ``{{ .Response }}``),
``cut_at_response()`` (TPL-08), ``infer_thinking_tags()`` (TPL-14), ``tool_call_tag()`` (GF-20),
and the parse tree itself (``Template.root``, node classes below) for any other walk.
``go_json(value)`` is the template ``json`` function; ``go_sprint``/``go_sprintf`` are Go's
``fmt.Sprint``/``fmt.Sprintf``.

Parse tree
----------
``Template.root`` is a ``ListNode``; the node classes mirror Go's ``text/template/parse``:
``ListNode(nodes)``, ``TextNode(text)``, ``ActionNode(pipe)``, ``PipeNode(decl, cmds,
is_assign)``, ``CommandNode(args)``, ``IdentifierNode(ident)`` (a function name),
``VariableNode(ident)`` (``$x.A`` -> ``["$x", "A"]``), ``FieldNode(ident)`` (``.A.B`` ->
``["A", "B"]``), ``ChainNode(node, field)`` (``(pipe).A``), ``DotNode``, ``NilNode``,
``BoolNode(value)``, ``NumberNode(text, is_int, is_uint, is_float, int_value, float_value)``,
``StringNode(quoted, text)``, ``IfNode``/``RangeNode``/``WithNode`` (``BranchNode``: ``pipe``,
``list``, ``else_list``; ``else if`` is an ``else_list`` holding one ``IfNode``),
``TemplateNode(name, pipe)`` (``template`` and ``block``), ``BreakNode``, ``ContinueNode``. Every
node has ``pos`` (character offset in the template text), ``line``, ``copy()`` and ``str()`` (Go's
``String()``, the template source rebuilt from the tree). ``iter_nodes(node)`` walks a subtree.

Go version: the semantics are those of a current Go (Ollama's): ``range`` over an integer,
``{{else with}}``, ``range $i, $v = ...`` and ``encoding/json``'s ``\b``/``\f`` escapes included.

Data model (Python value -> Go value)
-------------------------------------
* ``dict`` -> ``map[string]any``: ``.Key`` looks the key up; a missing key gives the zero value
  of ``any`` (nil: prints ``<no value>``, is false); ``range`` and printing visit keys sorted;
  ``json`` sorts keys.
* ``list``/``tuple`` -> ``[]any``; ``str`` -> ``string`` (``len``/``index``/``slice`` count UTF-8
  bytes, as Go does); ``int`` -> ``int``; ``float`` -> ``float64``; ``bool`` -> ``bool``;
  ``None`` -> a nil ``any``.
* Any other object -> a Go struct (pointer): ``.Field`` reads the attribute ``Field``. Only
  names starting with an upper-case letter are exported; an unknown field is an exec error
  ``can't evaluate field X in type T``. A bound method ``.Method`` is called like a Go method.
  Struct field order (for ``fmt``'s ``{a b}`` form and for JSON) is ``__json_fields__`` when the
  class defines it, else the dataclass fields, else the instance ``__dict__`` order.
  ``__json_fields__`` entries are ``"Attr"`` or ``"Attr:jsonname"`` or ``"Attr:jsonname,omitempty"``
  (``"Attr:-"`` leaves the field out of JSON), mirroring Go struct tags.
* Hooks (all optional, on any value including ``dict``/``list`` subclasses):
  ``go_string(self) -> str`` is Go's ``String()`` method (``fmt`` prints it, e.g. Ollama's
  ``.Tools`` and ``.Function.Arguments`` print as JSON); ``go_json(self)`` is ``MarshalJSON``:
  it returns the value to encode instead, or a ``RawJSON`` string inserted verbatim;
  ``__go_type__`` (class attribute, str) is the Go type name used in error messages and ``%T``;
  ``to_typescript_type(self) -> str`` is ``api.ToolProperty.ToTypeScriptType`` (otherwise an
  object with ``Type``/``AnyOf`` attributes is converted by Ollama's rules).

Left out of Go's language on purpose: complex and imaginary constants (no template uses them),
the ``ParseComments``/custom delimiters/``Funcs`` options (Ollama does not use them), channels and
iterator functions for ``range``, ``%#v`` Go-syntax printing (approximated by ``%v``) and pointer
addresses. Deep ``{{template}}`` recursion stops at Python's recursion limit, not at Go's 100000
(the error reads the same).

Errors name the template and position like Go (``template: NAME:LINE: ...`` for parse errors,
``template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`` at run time); their text can differ
from Go's where Go's message depends on static Go types this data model does not have.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import inspect
import math
import unicodedata
import urllib.parse
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

__all__ = [
    "NO_VALUE",
    "ActionNode",
    "BoolNode",
    "BranchNode",
    "BreakNode",
    "ChainNode",
    "CommandNode",
    "ContinueNode",
    "DotNode",
    "FieldNode",
    "IdentifierNode",
    "IfNode",
    "ListNode",
    "NilNode",
    "Node",
    "NumberNode",
    "PipeNode",
    "RangeNode",
    "RawJSON",
    "StringNode",
    "Template",
    "TemplateError",
    "TemplateNode",
    "TextNode",
    "VariableNode",
    "WithNode",
    "go_json",
    "go_sprint",
    "go_sprintf",
    "go_sprintln",
    "iter_nodes",
    "response_action",
]

MAX_EXEC_DEPTH = 100000  # Go's maxExecDepth for nested {{template}} calls


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


def _go_trim_space(s: str) -> str:
    """Go's strings.TrimSpace (unicode.IsSpace)."""
    return s.strip(_GO_SPACES)


def _is_go_print(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    if ch == " ":
        return True
    cat = unicodedata.category(ch)
    return cat[0] in "LMNPS"


# ---------------------------------------------------------------------------------------------
# strconv: quoting and float formatting
# ---------------------------------------------------------------------------------------------

_LHEX = "0123456789abcdef"


def _escaped_rune(ch: str, quote: str, ascii_only: bool) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # an invalid UTF-8 byte carried by surrogateescape
        b = o - 0xDC00
        return "\\x" + _LHEX[b >> 4] + _LHEX[b & 15]
    if ch == quote or ch == "\\":
        return "\\" + ch
    if ascii_only:
        if o < 0x80 and _is_go_print(ch):
            return ch
    elif _is_go_print(ch):
        return ch
    simple = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in simple:
        return simple[ch]
    if ch == "\v":
        return "\\v"
    if o < 0x20 or o == 0x7F:
        return "\\x" + _LHEX[o >> 4] + _LHEX[o & 15]
    if 0xD800 <= o <= 0xDFFF:
        o = 0xFFFD
    if o < 0x10000:
        return "\\u" + format(o, "04x")
    return "\\U" + format(o, "08x")


def _quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote / QuoteToASCII."""
    return '"' + "".join(_escaped_rune(c, '"', ascii_only) for c in s) + '"'


def _quote_rune(r: int, ascii_only: bool = False) -> str:
    """strconv.QuoteRune / QuoteRuneToASCII."""
    if r < 0 or r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
        r = 0xFFFD
    return "'" + _escaped_rune(chr(r), "'", ascii_only) + "'"


def _can_backquote(s: str) -> bool:
    for ch in s:
        o = ord(ch)
        if ch == "`" or o == 0xFEFF or 0xDC80 <= o <= 0xDCFF:
            return False
        if (o < 0x20 and ch != "\t") or o == 0x7F:
            return False
    return True


def _fmt_U(r: int) -> str:
    """fmt's %#U, used in lexer errors: ``U+0023 '#'``."""
    s = "U+" + format(r, "04X")
    if 0 <= r <= 0x10FFFF and not 0xD800 <= r <= 0xDFFF and _is_go_print(chr(r)):
        s += " '" + chr(r) + "'"
    return s


def _shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of abs(f) and the decimal point position (dp)."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    intpart, _, frac = mant.partition(".")
    digits = intpart + frac
    dp = len(intpart) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_exp(exp: int) -> str:
    sign = "-" if exp < 0 else "+"
    e = abs(exp)
    return "e" + sign + (f"{e:02d}")


def _format_float(f: float, fmt: str, prec: int) -> str:
    """strconv.FormatFloat(f, fmt, prec, 64) for fmt in e E f g G b x X (prec -1 = shortest)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    lower = fmt.lower()
    if lower == "x":
        return sign + _format_hex_float(abs(f), prec, upper=fmt == "X")
    if lower == "b":
        m, e = math.frexp(abs(f))
        return f"{sign}{int(m * (1 << 53))}p{e - 53:+d}"
    if prec >= 0:
        if lower == "g" and prec == 0:
            prec = 1
        out = format(abs(f), f".{prec}{lower}")
        return sign + (out.upper() if fmt in "EG" else out)
    digits, dp = _shortest_digits(f)
    nd = len(digits)
    upper = fmt in "EG"
    if lower == "g":
        # shortest %g: exponent form when exp < -4 || exp >= 6 (Go's eprec for shortest)
        lower = "e" if dp - 1 < -4 or dp - 1 >= 6 else "f"
    if lower == "e":
        out = digits[0] + ("." + digits[1:] if nd > 1 else "") + _fmt_exp(dp - 1)
        return sign + (out.upper() if upper else out)
    if dp <= 0:
        out = "0." + "0" * (-dp) + digits
    elif dp >= nd:
        out = digits + "0" * (dp - nd)
    else:
        out = digits[:dp] + "." + digits[dp:]
    return sign + out


def _format_hex_float(f: float, prec: int, upper: bool) -> str:
    if f == 0:
        mant, exp = "0", 0
    else:
        h = f.hex()  # 0x1.8000000000000p+1
        body, _, e = h[2:].partition("p")
        ip, _, fp = body.partition(".")
        fp = fp.rstrip("0")
        exp = int(e)
        if ip == "0":  # subnormal: normalise
            m, ex = math.frexp(f)
            val = int(m * (1 << 53))
            exp = ex - 1
            fp = format(val & ((1 << 52) - 1), "013x").rstrip("0")
            ip = "1"
        if prec >= 0 and len(fp) > prec:
            # round the hex mantissa to prec digits (round half to even)
            full = int(ip + fp, 16)
            shift = 4 * (len(fp) - prec)
            q, rem = divmod(full, 1 << shift)
            half = 1 << (shift - 1)
            if rem > half or (rem == half and q & 1):
                q += 1
            if q >> (4 * prec) >= 2:
                q >>= 1  # the mantissa rounded up to 2.0
                exp += 1
            s = format(q, "x")
            ip, fp = s[0], s[1:].rjust(prec, "0") if prec else ""
        mant = ip + ("." + fp if fp else "")
    if prec > 0 and "." not in mant:
        mant += "." + "0" * prec
    elif prec > 0:
        ip, _, fp = mant.partition(".")
        mant = ip + "." + fp.ljust(prec, "0")
    out = "0x" + mant + "p" + ("-" if exp < 0 else "+") + f"{abs(exp):02d}"
    return out.upper() if upper else out


# ---------------------------------------------------------------------------------------------
# fmt: Sprint, Sprintln, Sprintf
# ---------------------------------------------------------------------------------------------

_STRINGER_VERBS = "vsxXq"


def _has_stringer(v: Any) -> bool:
    return callable(getattr(type(v), "go_string", None))


class _Printer:
    """A port of the parts of Go's fmt ``pp``/``fmt`` state that templates use."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.erroring = False
        self.clear_flags()

    def clear_flags(self) -> None:
        self.plus = self.minus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid = self.prec = 0
        self.wid_present = self.prec_present = False

    # -- padding ------------------------------------------------------------------------------

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    def pad_nozero(self, s: str) -> None:
        old = self.zero
        self.zero = False
        self.pad(s)
        self.zero = old

    # -- basic kinds --------------------------------------------------------------------------

    def fmt_bool(self, v: bool, verb: str) -> None:
        if verb in "tv":
            self.pad("true" if v else "false")
        else:
            self.bad_verb(verb, v)

    def fmt_integer(self, v: int, verb: str) -> None:
        if verb == "v" or verb == "d":
            self.fmt_int_base(v, 10, verb, _LHEX)
        elif verb == "b":
            self.fmt_int_base(v, 2, verb, _LHEX)
        elif verb in "oO":
            self.fmt_int_base(v, 8, verb, _LHEX)
        elif verb == "x":
            self.fmt_int_base(v, 16, verb, _LHEX)
        elif verb == "X":
            self.fmt_int_base(v, 16, verb, "0123456789ABCDEF")
        elif verb == "c":
            r = v if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF else 0xFFFD
            self.pad(chr(r))
        elif verb == "q":
            self.pad(_quote_rune(v, ascii_only=self.plus))
        elif verb == "U":
            self.fmt_unicode(v)
        else:
            self.bad_verb(verb, v)

    def fmt_int_base(self, v: int, base: int, verb: str, digits: str) -> None:
        negative = v < 0
        u = -v if negative else v
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                old = self.zero
                self.zero = False
                self.write_padding(self.wid)
                self.zero = old
                return
        elif self.zero and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1
        if u == 0:
            s = "0"
        else:
            out = []
            while u:
                u, d = divmod(u, base)
                out.append(digits[d])
            s = "".join(reversed(out))
        if len(s) < prec:
            s = "0" * (prec - len(s)) + s
        if self.sharp:
            if base == 2:
                s = "0b" + s
            elif base == 8 and s[0] != "0":
                s = "0" + s
            elif base == 16:
                s = "0" + ("X" if digits[10] == "A" else "x") + s
        if verb == "O":
            s = "0o" + s
        if negative:
            s = "-" + s
        elif self.plus:
            s = "+" + s
        elif self.space:
            s = " " + s
        self.pad_nozero(s)

    def fmt_unicode(self, v: int) -> None:
        prec = 4
        if self.prec_present and self.prec > 4:
            prec = self.prec
        s = (
            "U+" + format(v, "X").rjust(prec, "0")
            if v >= 0
            else "U+" + format(v & (2**64 - 1), "X")
        )
        if self.sharp and 0 <= v <= 0x10FFFF and _is_go_print(chr(v)):
            s += " '" + chr(v) + "'"
        self.pad_nozero(s)

    def fmt_float(self, v: float, verb: str) -> None:
        if verb == "v":
            self.fmt_float_str(v, "g", -1)
        elif verb in "bgGxX":
            self.fmt_float_str(v, verb, -1)
        elif verb in "fFeE":
            self.fmt_float_str(v, "f" if verb == "F" else verb, 6)
        else:
            self.bad_verb(verb, v)

    def fmt_float_str(self, v: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = _format_float(v, verb, prec)
        num = num if num[0] in "+-" else "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad_nozero(num)
            return
        if self.sharp and verb != "b":
            num = self._sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            if self.zero and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    @staticmethod
    def _sharp_float(num: str, verb: str, prec: int) -> str:
        """The ``#`` flag: always a decimal point, and %g keeps its trailing zeros."""
        digits = (6 if prec == -1 else prec) if verb in "vgGx" else 0
        tail = ""
        has_point = saw_nonzero = False
        body = [num[0]]
        i = 1
        while i < len(num):
            c = num[i]
            if c == ".":
                has_point = True
            elif c in "pP" or (c in "eE" and verb not in "xX"):
                tail = num[i:]
                break
            else:
                if c != "0":
                    saw_nonzero = True
                if saw_nonzero:
                    digits -= 1
            body.append(c)
            i += 1
        out = "".join(body)
        if not has_point:
            if out[1:] == "0":
                digits -= 1
            out += "."
        return out + "0" * max(digits, 0) + tail

    def truncate(self, s: str) -> str:
        if self.prec_present and len(s) > self.prec:
            return s[: self.prec]
        return s

    def fmt_string(self, s: str, verb: str) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_string(s, "q")
            else:
                self.pad(self.truncate(s))
        elif verb == "s":
            self.pad(self.truncate(s))
        elif verb in "xX":
            self.fmt_sbx(_utf8(s), _LHEX if verb == "x" else "0123456789ABCDEF")
        elif verb == "q":
            s = self.truncate(s)
            if self.sharp and _can_backquote(s):
                self.pad("`" + s + "`")
            else:
                self.pad(_quote(s, ascii_only=self.plus))
        else:
            self.bad_verb(verb, s)

    def fmt_sbx(self, b: bytes, digits: str) -> None:
        length = len(b)
        if self.prec_present and self.prec < length:
            length = self.prec
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        x = "x" if digits[10] == "a" else "X"
        out = []
        if self.sharp:
            out.append("0" + x)
        for i in range(length):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append("0" + x)
            c = b[i]
            out.append(digits[c >> 4] + digits[c & 15])
        self.buf.append("".join(out))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def bad_verb(self, verb: str, arg: Any) -> None:
        # like Go, the operand is printed with %v under the same flags, String() not called
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if arg is None or arg is NO_VALUE:
            self.buf.append("<nil>")
        else:
            self.buf.append(_go_type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.buf.append(")")
        self.erroring = False

    # -- arbitrary values ---------------------------------------------------------------------

    def handle_methods(self, arg: Any, verb: str) -> bool:
        if self.erroring or self.sharp_v or verb not in _STRINGER_VERBS:
            return False
        if not _has_stringer(arg):
            return False
        self.fmt_string(str(arg.go_string()), verb)
        return True

    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is None or arg is NO_VALUE:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, arg)
            return
        if verb == "T":
            self.fmt_string(_go_type_name(arg), "s")
            return
        t = type(arg)
        if t is bool:
            self.fmt_bool(arg, verb)
        elif t is int:
            self.fmt_integer(arg, verb)
        elif t is float:
            self.fmt_float(arg, verb)
        elif t is str:
            self.fmt_string(arg, verb)
        elif not self.handle_methods(arg, verb):
            self.print_value(arg, verb, 0)

    def print_value(self, v: Any, verb: str, depth: int) -> None:
        if depth > 0 and v is not None and v is not NO_VALUE and self.handle_methods(v, verb):
            return
        kind = _kind(v)
        if kind == "invalid":
            if depth == 0:
                self.buf.append("<invalid reflect.Value>")
            elif verb == "v":
                self.buf.append("<nil>")
            else:
                self.bad_verb(verb, None)
        elif kind == "nil":
            self.buf.append("<nil>")
        elif kind == "bool":
            self.fmt_bool(v, verb)
        elif kind == "int":
            self.fmt_integer(int(v), verb)
        elif kind == "float":
            self.fmt_float(float(v), verb)
        elif kind == "string":
            self.fmt_string(str(v), verb)
        elif kind == "map":
            self.buf.append("map[")
            for i, k in enumerate(_sorted_keys(v)):
                if i > 0:
                    self.buf.append(" ")
                self.print_value(k, verb, depth + 1)
                self.buf.append(":")
                self.print_value(v[k], verb, depth + 1)
            self.buf.append("]")
        elif kind == "slice":
            self.buf.append("[")
            for i, e in enumerate(v):
                if i > 0:
                    self.buf.append(" ")
                self.print_value(e, verb, depth + 1)
            self.buf.append("]")
        elif kind == "struct":
            self.buf.append("{")
            for i, attr in enumerate(_struct_attrs(v)):
                if i > 0:
                    self.buf.append(" ")
                if self.plus_v or self.sharp_v:
                    self.buf.append(attr + ":")
                self.print_value(getattr(v, attr, None), verb, depth + 1)
            self.buf.append("}")
        else:  # func
            self.buf.append(f"0x{id(v):x}")

    # -- entry points -------------------------------------------------------------------------

    def do_print(self, args: list[Any]) -> None:
        prev_string = False
        for i, arg in enumerate(args):
            is_string = isinstance(arg, str)
            if i > 0 and not is_string and not prev_string:
                self.buf.append(" ")
            self.clear_flags()
            self.print_arg(arg, "v")
            prev_string = is_string

    def do_println(self, args: list[Any]) -> None:
        for i, arg in enumerate(args):
            if i > 0:
                self.buf.append(" ")
            self.clear_flags()
            self.print_arg(arg, "v")
        self.buf.append("\n")

    def do_printf(self, fmt: str, args: list[Any]) -> None:
        end = len(fmt)
        arg_num = 0
        after_index = False
        reordered = False
        i = 0
        while i < end:
            good_arg_num = True
            last = i
            while i < end and fmt[i] != "%":
                i += 1
            if i > last:
                self.buf.append(fmt[last:i])
            if i >= end:
                break
            i += 1
            self.clear_flags()
            simple_done = False
            while i < end:
                c = fmt[i]
                if c == "#":
                    self.sharp = True
                elif c == "0":
                    self.zero = not self.minus
                elif c == "+":
                    self.plus = True
                elif c == "-":
                    self.minus = True
                    self.zero = False
                elif c == " ":
                    self.space = True
                else:
                    if "a" <= c <= "z" and arg_num < len(args):
                        if c == "v":
                            self.sharp_v, self.sharp = self.sharp, False
                            self.plus_v, self.plus = self.plus, False
                        self.print_arg(args[arg_num], c)
                        arg_num += 1
                        i += 1
                        simple_done = True
                    break
                i += 1
            if simple_done:
                continue

            arg_num, i, after_index, ok = self._arg_number(fmt, arg_num, i, len(args))
            if not ok:
                good_arg_num = False
            reordered = reordered or after_index or not ok

            if i < end and fmt[i] == "*":
                i += 1
                self.wid, self.wid_present, arg_num = self._int_from_arg(args, arg_num)
                if not self.wid_present:
                    self.buf.append("%!(BADWIDTH)")
                if self.wid < 0:
                    self.wid = -self.wid
                    self.minus = True
                    self.zero = False
                after_index = False
            else:
                self.wid, self.wid_present, i = self._parse_num(fmt, i, end)
                if after_index and self.wid_present:
                    good_arg_num = False

            if i + 1 < end and fmt[i] == ".":
                i += 1
                if after_index:
                    good_arg_num = False
                arg_num, i, after_index, ok = self._arg_number(fmt, arg_num, i, len(args))
                if not ok:
                    good_arg_num = False
                reordered = reordered or after_index or not ok
                if i < end and fmt[i] == "*":
                    i += 1
                    self.prec, self.prec_present, arg_num = self._int_from_arg(args, arg_num)
                    if self.prec < 0:
                        self.prec = 0
                        self.prec_present = False
                    if not self.prec_present:
                        self.buf.append("%!(BADPREC)")
                    after_index = False
                else:
                    self.prec, self.prec_present, i = self._parse_num(fmt, i, end)
                    if not self.prec_present:
                        self.prec = 0
                        self.prec_present = True

            if not after_index:
                arg_num, i, after_index, ok = self._arg_number(fmt, arg_num, i, len(args))
                if not ok:
                    good_arg_num = False
                reordered = reordered or after_index or not ok

            if i >= end:
                self.buf.append("%!(NOVERB)")
                break
            verb = fmt[i]
            i += 1
            if verb == "%":
                self.buf.append("%")
            elif not good_arg_num:
                self.buf.append("%!" + verb + "(BADINDEX)")
            elif arg_num >= len(args):
                self.buf.append("%!" + verb + "(MISSING)")
            else:
                if verb == "v":
                    self.sharp_v, self.sharp = self.sharp, False
                    self.plus_v, self.plus = self.plus, False
                self.print_arg(args[arg_num], verb)
                arg_num += 1

        if not reordered and arg_num < len(args):
            self.clear_flags()
            self.buf.append("%!(EXTRA ")
            for k, arg in enumerate(args[arg_num:]):
                if k > 0:
                    self.buf.append(", ")
                if arg is None or arg is NO_VALUE:
                    self.buf.append("<nil>")
                else:
                    self.buf.append(_go_type_name(arg) + "=")
                    self.print_arg(arg, "v")
            self.buf.append(")")

    @staticmethod
    def _arg_number(fmt: str, arg_num: int, i: int, nargs: int) -> tuple[int, int, bool, bool]:
        """An explicit ``[n]`` argument index: (arg_num, i, found, ok)."""
        if i >= len(fmt) or fmt[i] != "[":
            return arg_num, i, False, True
        rest = fmt[i:]
        if len(rest) < 3:
            return arg_num, i + 1, False, False
        close = rest.find("]", 1)
        if close < 0:
            return arg_num, i + 1, False, False
        digits = rest[1:close]
        if not digits or not (digits.isascii() and digits.isdigit()) or len(digits) > 7:
            return arg_num, i + close + 1, False, False
        index = int(digits) - 1
        if 0 <= index < nargs:
            return index, i + close + 1, True, True
        return arg_num, i + close + 1, True, False

    @staticmethod
    def _parse_num(s: str, start: int, end: int) -> tuple[int, bool, int]:
        if start >= end:
            return 0, False, end
        num = 0
        is_num = False
        i = start
        while i < end and "0" <= s[i] <= "9":
            if num > 1_000_000:
                return 0, False, end
            num = num * 10 + ord(s[i]) - 48
            is_num = True
            i += 1
        return num, is_num, i

    @staticmethod
    def _int_from_arg(args: list[Any], arg_num: int) -> tuple[int, bool, int]:
        num, is_int = 0, False
        if arg_num < len(args):
            a = args[arg_num]
            if _kind(a) == "int":
                num, is_int = int(a), True
                if num > 1_000_000 or num < -1_000_000:
                    num, is_int = 0, False
            arg_num += 1
        return num, is_int, arg_num

    def text(self) -> str:
        return "".join(self.buf)


def go_sprint(*args: Any) -> str:
    """Go's ``fmt.Sprint``: spaces between operands when neither side is a string."""
    p = _Printer()
    p.do_print(list(args))
    return p.text()


def go_sprintln(*args: Any) -> str:
    """Go's ``fmt.Sprintln``: operands separated by spaces, then a newline."""
    p = _Printer()
    p.do_println(list(args))
    return p.text()


def go_sprintf(fmt: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (v s q d x X o b c U e f g t T %)."""
    p = _Printer()
    p.do_printf(fmt, list(args))
    return p.text()


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
        raise _JSONError(f"json: unsupported value: {_format_float(f, 'g', -1)}")
    a = abs(f)
    fmt = "e" if a != 0 and (a < 1e-6 or a >= 1e21) else "f"
    s = _format_float(f, fmt, -1)
    if fmt == "e" and len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
        s = s[:-2] + s[-1]
    return s


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


# ---------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------

(
    _ERROR,
    _BOOL,
    _CHAR,
    _CHAR_CONSTANT,
    _COMPLEX,
    _ASSIGN,
    _DECLARE,
    _EOF,
    _FIELD,
    _IDENTIFIER,
    _LEFT_DELIM,
    _LEFT_PAREN,
    _NUMBER,
    _PIPE,
    _RAW_STRING,
    _RIGHT_DELIM,
    _RIGHT_PAREN,
    _SPACE,
    _STRING,
    _TEXT,
    _VARIABLE,
    _KEYWORD,  # keywords follow
    _BLOCK,
    _BREAK,
    _CONTINUE,
    _DOT,
    _DEFINE,
    _ELSE,
    _END,
    _IF,
    _NIL,
    _RANGE,
    _TEMPLATE,
    _WITH,
) = range(34)

_KEYWORDS = {
    ".": _DOT,
    "block": _BLOCK,
    "break": _BREAK,
    "continue": _CONTINUE,
    "define": _DEFINE,
    "else": _ELSE,
    "end": _END,
    "if": _IF,
    "range": _RANGE,
    "nil": _NIL,
    "template": _TEMPLATE,
    "with": _WITH,
}

_LEFT = "{{"
_RIGHT = "}}"
_SPACE_CHARS = " \t\r\n"


class _Item:
    __slots__ = ("line", "pos", "typ", "val")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ = typ
        self.pos = pos
        self.val = val
        self.line = line

    def __str__(self) -> str:
        if self.typ == _EOF:
            return "EOF"
        if self.typ == _ERROR:
            return self.val
        if self.typ > _KEYWORD:
            return "<" + self.val + ">"
        if len(_utf8(self.val)) > 10:  # bytes, while %.10q keeps 10 runes
            return _quote(self.val[:10]) + "..."
        return _quote(self.val)


def _is_space(ch: str) -> bool:
    return ch != "" and ch in _SPACE_CHARS


def _is_alnum(ch: str) -> bool:
    if ch == "":
        return False
    if ch == "_" or ch.isalpha():
        return True
    return unicodedata.category(ch) == "Nd"


def _has_left_trim(s: str, i: int) -> bool:
    return len(s) - i >= 2 and s[i] == "-" and s[i + 1] in _SPACE_CHARS


def _has_right_trim(s: str, i: int) -> bool:
    return len(s) - i >= 2 and s[i] in _SPACE_CHARS and s[i + 1] == "-"


class _Lexer:
    """Splits template text into items, exactly as Go's text/template/parse lexer does."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.items: list[_Item] = []
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def line_at(self, pos: int) -> int:
        return 1 + bisect_right(self._newlines, pos - 1)

    def run(self) -> list[_Item]:
        state: Callable[[], Any] | None = self.lex_text
        while state is not None:
            state = state()
        return self.items

    # -- primitives ---------------------------------------------------------------------------

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return ""
        ch = self.input[self.pos]
        self.pos += 1
        return ch

    def peek(self) -> str:
        ch = self.next()
        self.backup()
        return ch

    def backup(self) -> None:
        if not self.at_eof and self.pos > 0:
            self.pos -= 1

    def emit(self, typ: int) -> None:
        self.items.append(
            _Item(typ, self.start, self.input[self.start : self.pos], self.line_at(self.start))
        )
        self.start = self.pos

    def ignore(self) -> None:
        self.start = self.pos

    def accept(self, valid: str) -> bool:
        ch = self.next()
        if ch != "" and ch in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            ch = self.next()
            if ch == "" or ch not in valid:
                break
        self.backup()

    def errorf(self, msg: str) -> None:
        self.items.append(_Item(_ERROR, self.start, msg, self.line_at(self.start)))
        return None

    # -- states -------------------------------------------------------------------------------

    def lex_text(self) -> Callable[[], Any] | None:
        x = self.input.find(_LEFT, self.pos)
        if x >= 0:
            self.pos = x
            trim = 0
            if _has_left_trim(self.input, x + len(_LEFT)):
                text = self.input[self.start : x]
                trim = len(text) - len(text.rstrip(_SPACE_CHARS))
            self.pos -= trim
            if self.pos > self.start:
                self.emit(_TEXT)
            self.pos += trim
            self.ignore()
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:
            self.emit(_TEXT)
        self.emit(_EOF)
        return None

    def at_right_delim(self) -> tuple[bool, bool]:
        if _has_right_trim(self.input, self.pos) and self.input.startswith(_RIGHT, self.pos + 2):
            return True, True
        if self.input.startswith(_RIGHT, self.pos):
            return True, False
        return False, False

    def left_trim_length(self, i: int) -> int:
        rest = self.input[i:]
        return len(rest) - len(rest.lstrip(_SPACE_CHARS))

    def lex_left_delim(self) -> Callable[[], Any] | None:
        self.pos += len(_LEFT)
        trim = _has_left_trim(self.input, self.pos)
        after = 2 if trim else 0
        if self.input.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(_LEFT_DELIM)
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        return self.lex_inside_action

    def lex_comment(self) -> Callable[[], Any] | None:
        self.pos += 2
        i = self.input.find("*/", self.pos)
        if i < 0:
            return self.errorf("unclosed comment")
        self.pos = i + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += len(_RIGHT)
        if trim:
            self.pos += self.left_trim_length(self.pos)
        self.ignore()
        return self.lex_text

    def lex_right_delim(self) -> Callable[[], Any] | None:
        trim = _has_right_trim(self.input, self.pos)
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(_RIGHT)
        self.emit(_RIGHT_DELIM)
        if trim:
            self.pos += self.left_trim_length(self.pos)
            self.ignore()
        return self.lex_text

    def lex_inside_action(self) -> Callable[[], Any] | None:
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        ch = self.next()
        if ch == "":
            return self.errorf("unclosed action")
        if _is_space(ch):
            self.backup()
            return self.lex_space
        if ch == "=":
            self.emit(_ASSIGN)
        elif ch == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            self.emit(_DECLARE)
        elif ch == "|":
            self.emit(_PIPE)
        elif ch == '"':
            return self.lex_quote
        elif ch == "`":
            return self.lex_raw_quote
        elif ch == "$":
            return self.lex_variable
        elif ch == "'":
            return self.lex_char
        elif ch == "." and self.pos < len(self.input) and not "0" <= self.input[self.pos] <= "9":
            return self.lex_field
        elif ch in ".+-" or "0" <= ch <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(ch):
            self.backup()
            return self.lex_identifier
        elif ch == "(":
            self.emit(_LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self.emit(_RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf(f"unexpected right paren {_fmt_U(ord(ch))}")
        elif ord(ch) < 0x80 and _is_go_print(ch):
            self.emit(_CHAR)
        else:
            return self.errorf(f"unrecognized character in action: {_fmt_U(ord(ch))}")
        return self.lex_inside_action

    def lex_space(self) -> Callable[[], Any] | None:
        num = 0
        while _is_space(self.peek()):
            self.next()
            num += 1
        if _has_right_trim(self.input, self.pos - 1) and self.input.startswith(
            _RIGHT, self.pos + 1
        ):
            self.backup()
            if num == 1:
                return self.lex_right_delim
        self.emit(_SPACE)
        return self.lex_inside_action

    def lex_identifier(self) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if _is_alnum(ch):
                continue
            self.backup()
            word = self.input[self.start : self.pos]
            if not self.at_terminator():
                return self.errorf(f"bad character {_fmt_U(ord(ch) if ch else -1)}")
            kw = _KEYWORDS.get(word)
            if kw is not None and kw > _KEYWORD:
                self.emit(kw)
            elif word[0] == ".":
                self.emit(_FIELD)
            elif word in ("true", "false"):
                self.emit(_BOOL)
            else:
                self.emit(_IDENTIFIER)
            return self.lex_inside_action

    def lex_field(self) -> Callable[[], Any] | None:
        return self.lex_field_or_variable(_FIELD)

    def lex_variable(self) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(_VARIABLE)
            return self.lex_inside_action
        return self.lex_field_or_variable(_VARIABLE)

    def lex_field_or_variable(self, typ: int) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(_VARIABLE if typ == _VARIABLE else _DOT)
            return self.lex_inside_action
        while True:
            ch = self.next()
            if not _is_alnum(ch):
                self.backup()
                break
        if not self.at_terminator():
            return self.errorf(f"bad character {_fmt_U(ord(ch) if ch else -1)}")
        self.emit(typ)
        return self.lex_inside_action

    def at_terminator(self) -> bool:
        ch = self.peek()
        if ch == "" or _is_space(ch) or ch in ".,|:)(":
            return True
        return self.input.startswith(_RIGHT, self.pos)

    def lex_char(self) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch == "\\":
                ch2 = self.next()
                if ch2 not in ("", "\n"):
                    continue
                return self.errorf("unterminated character constant")
            if ch in ("", "\n"):
                return self.errorf("unterminated character constant")
            if ch == "'":
                break
        self.emit(_CHAR_CONSTANT)
        return self.lex_inside_action

    def lex_number(self) -> Callable[[], Any] | None:
        if not self.scan_number():
            return self.errorf(f"bad number syntax: {_quote(self.input[self.start : self.pos])}")
        sign = self.peek()
        if sign in ("+", "-"):
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf(
                    f"bad number syntax: {_quote(self.input[self.start : self.pos])}"
                )
            self.emit(_COMPLEX)
        else:
            self.emit(_NUMBER)
        return self.lex_inside_action

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _is_alnum(self.peek()):
            self.next()
            return False
        return True

    def lex_quote(self) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch == "\\":
                ch2 = self.next()
                if ch2 not in ("", "\n"):
                    continue
                return self.errorf("unterminated quoted string")
            if ch in ("", "\n"):
                return self.errorf("unterminated quoted string")
            if ch == '"':
                break
        self.emit(_STRING)
        return self.lex_inside_action

    def lex_raw_quote(self) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch == "":
                return self.errorf("unterminated raw quoted string")
            if ch == "`":
                break
        self.emit(_RAW_STRING)
        return self.lex_inside_action


# ---------------------------------------------------------------------------------------------
# strconv.Unquote and number literals
# ---------------------------------------------------------------------------------------------

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def _unquote_char(s: str, i: int, quote: str) -> tuple[str, int]:
    """strconv.UnquoteChar on s[i:]: returns (decoded text, next index); raises ValueError."""
    ch = s[i]
    if ch == quote and quote in "'\"":
        raise ValueError("invalid syntax")
    if ch != "\\":
        return ch, i + 1
    if i + 1 >= len(s):
        raise ValueError("invalid syntax")
    c = s[i + 1]
    i += 2
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i
    if c in "xuU":
        n = {"x": 2, "u": 4, "U": 8}[c]
        hexdigits = s[i : i + n]
        if len(hexdigits) < n or any(h not in "0123456789abcdefABCDEF" for h in hexdigits):
            raise ValueError("invalid syntax")
        v = int(hexdigits, 16)
        i += n
        if c == "x":
            if quote == "'":
                return chr(v), i
            return (chr(v) if v < 0x80 else chr(0xDC00 + v)), i  # a raw byte
        if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
            raise ValueError("invalid syntax")
        return chr(v), i
    if "0" <= c <= "7":
        octal = s[i - 1 : i + 2]
        if len(octal) < 3 or any(o not in "01234567" for o in octal):
            raise ValueError("invalid syntax")
        v = int(octal, 8)
        if v > 255:
            raise ValueError("invalid syntax")
        i += 2
        if quote == "'":
            return chr(v), i
        return (chr(v) if v < 0x80 else chr(0xDC00 + v)), i
    if c in "'\"":
        if c != quote:
            raise ValueError("invalid syntax")
        return c, i
    raise ValueError("invalid syntax")


def _unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` literals; raises ValueError("invalid syntax")."""
    if len(s) < 2 or s[0] != s[-1]:
        raise ValueError("invalid syntax")
    quote = s[0]
    body = s[1:-1]
    if quote == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    if quote != '"':
        raise ValueError("invalid syntax")
    if "\n" in body:
        raise ValueError("invalid syntax")
    out: list[str] = []
    i = 0
    while i < len(body):
        text, i = _unquote_char(body, i, '"')
        out.append(text)
    joined = "".join(out)
    # \x and octal escapes >= 0x80 are single bytes: re-decode them as UTF-8 where they form runes.
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in joined):
        joined = _from_utf8(_utf8(joined))
    return joined


def _underscore_ok(s: str) -> bool:
    """strconv's underscoreOK: underscores only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _parse_go_int(text: str, signed: bool) -> int | None:
    """strconv.ParseInt(text, 0, 64) / ParseUint(text, 0, 64); None on error."""
    s = text
    neg = False
    if s[:1] in ("+", "-"):
        if not signed:
            return None
        neg = s[0] == "-"
        s = s[1:]
    if not s:
        return None
    base = 10
    body = s
    if len(s) >= 2 and s[0] == "0" and s[1] in "xXoObB":
        base = {"x": 16, "o": 8, "b": 2}[s[1].lower()]
        body = s[2:]
    elif len(s) > 1 and s[0] == "0":
        base = 8
        body = s[1:]
    if "_" in s:
        if not _underscore_ok(s):
            return None
        body = body.replace("_", "")
    if not body:
        return None
    try:
        v = int(body, base)
    except ValueError:
        return None
    if neg:
        v = -v
    if signed and not -(2**63) <= v < 2**63:
        return None
    if not signed and not 0 <= v < 2**64:
        return None
    return v


def _parse_go_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for the literal forms the lexer produces."""
    s = text
    if "_" in s:
        if not _underscore_ok(s):
            return None
        s = s.replace("_", "")
    body = s.lstrip("+-")
    try:
        if body[:2] in ("0x", "0X"):
            if "p" not in body.lower():
                return None
            v = float.fromhex(body)
        else:
            if not body or body[0] not in "0123456789.":
                return None
            v = float(body)
    except (ValueError, OverflowError):
        return None
    if math.isinf(v):
        return None  # strconv.ParseFloat: value out of range
    return -v if s.startswith("-") else v


# ---------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------


class _TreeInfo:
    """What a node needs to report its position: the top-level template name and text."""

    __slots__ = ("_newlines", "parse_name", "text")

    def __init__(self, parse_name: str, text: str) -> None:
        self.parse_name = parse_name
        self.text = text
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def location(self, pos: int) -> tuple[int, int]:
        """(1-based line, 0-based byte column) of a character offset, as Go's ErrorContext."""
        k = bisect_right(self._newlines, pos - 1)
        line_start = self._newlines[k - 1] + 1 if k else 0
        return k + 1, len(_utf8(self.text[line_start:pos]))

    def __deepcopy__(self, memo: dict[int, Any]) -> _TreeInfo:
        return self


@dataclasses.dataclass(eq=False)
class Node:
    """Base of the parse-tree nodes (Go's ``parse.Node``).

    ``pos`` is the character offset of the node in the template text; ``str(node)`` is Go's
    ``Node.String()`` (template source re-created from the tree).
    """

    pos: int
    tree: _TreeInfo | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def copy(self) -> Node:
        """A deep copy of the subtree."""
        return copy.deepcopy(self)

    @property
    def line(self) -> int:
        """1-based line of the node (1 for nodes built outside the parser)."""
        return self.tree.location(self.pos)[0] if self.tree else 1


@dataclasses.dataclass(eq=False)
class ListNode(Node):
    """A sequence of nodes (template body, branch body)."""

    nodes: list[Node] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclasses.dataclass(eq=False)
class TextNode(Node):
    """Literal text between actions (already trimmed by ``{{-``/``-}}``)."""

    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(eq=False)
class PipeNode(Node):
    """A pipeline: optional declarations (``$x :=`` / ``$x =``) and ``|``-separated commands."""

    decl: list[VariableNode] = dataclasses.field(default_factory=list)
    cmds: list[CommandNode] = dataclasses.field(default_factory=list)
    is_assign: bool = False

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + " := "
        return s + " | ".join(str(c) for c in self.cmds)


@dataclasses.dataclass(eq=False)
class ActionNode(Node):
    """A non-control action ``{{ pipeline }}``: prints the value unless it declares variables."""

    pipe: PipeNode | None = None

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclasses.dataclass(eq=False)
class CommandNode(Node):
    """One command of a pipeline: a function, field, variable, constant or (sub-pipeline)."""

    args: list[Node] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            parts.append(f"({a})" if isinstance(a, PipeNode) else str(a))
        return " ".join(parts)


@dataclasses.dataclass(eq=False)
class IdentifierNode(Node):
    """A function name."""

    ident: str = ""

    def __str__(self) -> str:
        return self.ident


@dataclasses.dataclass(eq=False)
class VariableNode(Node):
    """``$``, ``$x`` or ``$x.Field.Chain``: ``ident`` is ``["$x", "Field", "Chain"]``."""

    ident: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclasses.dataclass(eq=False)
class DotNode(Node):
    """The cursor ``.``."""

    def __str__(self) -> str:
        return "."


@dataclasses.dataclass(eq=False)
class NilNode(Node):
    """The untyped ``nil`` constant."""

    def __str__(self) -> str:
        return "nil"


@dataclasses.dataclass(eq=False)
class FieldNode(Node):
    """``.A.B``: ``ident`` is ``["A", "B"]``."""

    ident: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclasses.dataclass(eq=False)
class ChainNode(Node):
    """``(pipeline).A.B`` or ``fn.A``: fields applied to the value of ``node``."""

    node: Node | None = None
    field: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + f for f in self.field)


@dataclasses.dataclass(eq=False)
class BoolNode(Node):
    """``true`` or ``false``."""

    value: bool = False

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclasses.dataclass(eq=False)
class NumberNode(Node):
    """A numeric or character constant, with every Go interpretation that fits."""

    text: str = ""
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    int_value: int = 0
    float_value: float = 0.0

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(eq=False)
class StringNode(Node):
    """A string constant: ``quoted`` as written, ``text`` after unquoting."""

    quoted: str = ""
    text: str = ""

    def __str__(self) -> str:
        return self.quoted


@dataclasses.dataclass(eq=False)
class BranchNode(Node):
    """Common part of ``if``, ``range`` and ``with``; ``else_list`` is ``None`` without else.

    ``{{ else if ... }}`` / ``{{ else with ... }}`` are represented, as in Go, by an
    ``else_list`` holding a single nested ``IfNode`` / ``WithNode``.
    """

    pipe: PipeNode | None = None
    list: ListNode | None = None
    else_list: ListNode | None = None
    keyword: str = dataclasses.field(default="", init=False, repr=False)

    def __str__(self) -> str:
        s = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


@dataclasses.dataclass(eq=False)
class IfNode(BranchNode):
    """``{{if pipeline}} list {{else}} else_list {{end}}``."""

    keyword: str = dataclasses.field(default="if", init=False, repr=False)


@dataclasses.dataclass(eq=False)
class RangeNode(BranchNode):
    """``{{range [$i, $v :=] pipeline}} list {{else}} else_list {{end}}``."""

    keyword: str = dataclasses.field(default="range", init=False, repr=False)


@dataclasses.dataclass(eq=False)
class WithNode(BranchNode):
    """``{{with pipeline}} list {{else}} else_list {{end}}`` (dot becomes the value)."""

    keyword: str = dataclasses.field(default="with", init=False, repr=False)


@dataclasses.dataclass(eq=False)
class TemplateNode(Node):
    """``{{template "name" pipeline}}`` (``pipe`` is ``None`` without a pipeline); ``block``
    also produces one (and defines the template)."""

    name: str = ""
    pipe: PipeNode | None = None

    def __str__(self) -> str:
        s = "{{template " + _quote(self.name)
        if self.pipe is not None:
            s += " " + str(self.pipe)
        return s + "}}"


@dataclasses.dataclass(eq=False)
class BreakNode(Node):
    """``{{break}}`` inside a range."""

    def __str__(self) -> str:
        return "{{break}}"


@dataclasses.dataclass(eq=False)
class ContinueNode(Node):
    """``{{continue}}`` inside a range."""

    def __str__(self) -> str:
        return "{{continue}}"


@dataclasses.dataclass(eq=False)
class _EndNode(Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclasses.dataclass(eq=False)
class _ElseNode(Node):
    def __str__(self) -> str:
        return "{{else}}"


def response_action() -> ActionNode:
    """A fresh ``{{ .Response }}`` action, the node Ollama appends to templates (TPL-02)."""
    return ActionNode(
        0, pipe=PipeNode(0, cmds=[CommandNode(0, args=[FieldNode(0, ident=["Response"])])])
    )


def _is_empty_tree(n: Node | None) -> bool:
    if n is None:
        return True
    if isinstance(n, ListNode):
        return all(_is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return _go_trim_space(n.text) == ""
    return False


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

_OPERAND_START = (
    _BOOL,
    _CHAR_CONSTANT,
    _COMPLEX,
    _DOT,
    _FIELD,
    _IDENTIFIER,
    _NUMBER,
    _NIL,
    _RAW_STRING,
    _STRING,
    _VARIABLE,
    _LEFT_PAREN,
)


class _Parser:
    """Builds the trees of one template text (the main one and every define/block)."""

    def __init__(self, name: str, text: str, funcs: set[str]) -> None:
        self.parse_name = name
        self.items = _Lexer(text).run()
        self.info = _TreeInfo(name, text)
        self.funcs = funcs
        self.i = 0
        self.maxread = 0
        self.trees: dict[str, ListNode] = {}
        # per-tree state (saved and restored around define/block bodies)
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0

    # -- tokens -------------------------------------------------------------------------------

    def _fetch(self, idx: int) -> _Item:
        idx = min(idx, len(self.items) - 1)
        self.maxread = max(self.maxread, idx)
        return self.items[idx]

    def next(self) -> _Item:
        tok = self._fetch(self.i)
        self.i += 1
        return tok

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> _Item:
        return self._fetch(self.i)

    def next_non_space(self) -> _Item:
        while True:
            tok = self.next()
            if tok.typ != _SPACE:
                return tok

    def peek_non_space(self) -> _Item:
        tok = self.next_non_space()
        self.backup()
        return tok

    # -- errors -------------------------------------------------------------------------------

    def errorf(self, msg: str) -> NoReturn:
        line = self.items[min(self.maxread, len(self.items) - 1)].line
        raise TemplateError(
            f"template: {self.parse_name}:{line}: {msg}",
            name=self.parse_name,
            line=line,
            phase="parse",
        )

    def unexpected(self, tok: _Item, context: str) -> NoReturn:
        if tok.typ == _ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != tok.line:
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(f"{tok.val}{extra}")
        self.errorf(f"unexpected {tok} in {context}")

    def expect(self, typ: int, context: str) -> _Item:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    def expect_one_of(self, t1: int, t2: int, context: str) -> _Item:
        tok = self.next_non_space()
        if tok.typ != t1 and tok.typ != t2:
            self.unexpected(tok, context)
        return tok

    def unquote(self, s: str) -> str:
        try:
            return _unquote(s)
        except ValueError as e:
            self.errorf(str(e))

    # -- trees --------------------------------------------------------------------------------

    def add(self, name: str, root: ListNode) -> None:
        existing = self.trees.get(name)
        if existing is None or _is_empty_tree(existing):
            self.trees[name] = root
            return
        if not _is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {_quote(name)}")

    def _sub_tree(self) -> tuple[list[str], int, int]:
        saved = (self.vars, self.range_depth, self.action_line)
        self.vars, self.range_depth, self.action_line = ["$"], 0, 0
        return saved

    def parse(self) -> dict[str, ListNode]:
        root = ListNode(self.peek().pos, tree=self.info)
        while self.peek().typ != _EOF:
            if self.peek().typ == _LEFT_DELIM:
                save = self.i
                self.next()
                if self.next_non_space().typ == _DEFINE:
                    self.parse_definition()
                    continue
                self.i = save
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                self.errorf(f"unexpected {n}")
            root.nodes.append(n)
        self.add(self.parse_name, root)
        return self.trees

    def parse_definition(self) -> None:
        context = "define clause"
        saved = self._sub_tree()
        tok = self.expect_one_of(_STRING, _RAW_STRING, context)
        name = self.unquote(tok.val)
        self.expect(_RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(name, root)
        self.vars, self.range_depth, self.action_line = saved

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos, tree=self.info)
        while self.peek_non_space().typ != _EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.typ == _TEXT:
            return TextNode(tok.pos, text=tok.val, tree=self.info)
        if tok.typ == _LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == _BLOCK:
            return self.block_control()
        if typ in (_BREAK, _CONTINUE):
            word = "break" if typ == _BREAK else "continue"
            t2 = self.next_non_space()
            if t2.typ != _RIGHT_DELIM:
                self.unexpected(t2, "{{" + word + "}}")
            if self.range_depth == 0:
                self.errorf("{{" + word + "}} outside {{range}}")
            cls = BreakNode if typ == _BREAK else ContinueNode
            return cls(tok.pos, tree=self.info)
        if typ == _ELSE:
            return self.else_control()
        if typ == _END:
            return _EndNode(self.expect(_RIGHT_DELIM, "end").pos, tree=self.info)
        if typ == _IF:
            return self.control(IfNode, "if")
        if typ == _RANGE:
            return self.control(RangeNode, "range")
        if typ == _TEMPLATE:
            return self.template_control()
        if typ == _WITH:
            return self.control(WithNode, "with")
        self.backup()
        pos = self.peek().pos
        return ActionNode(pos, pipe=self.pipeline("command", _RIGHT_DELIM), tree=self.info)

    def control(self, cls: type[BranchNode], context: str) -> BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, _RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _ElseNode):
                if context == "if" and self.peek().typ == _IF:
                    self.next()
                    else_list = ListNode(nxt.pos, tree=self.info)
                    else_list.nodes.append(self.control(IfNode, "if"))
                elif context == "with" and self.peek().typ == _WITH:
                    self.next()
                    else_list = ListNode(nxt.pos, tree=self.info)
                    else_list.nodes.append(self.control(WithNode, "with"))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return cls(pipe.pos, pipe=pipe, list=lst, else_list=else_list, tree=self.info)
        finally:
            del self.vars[mark:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (_IF, _WITH):
            return _ElseNode(peek.pos, tree=self.info)
        tok = self.expect(_RIGHT_DELIM, "else")
        return _ElseNode(tok.pos, tree=self.info)

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, _RIGHT_DELIM)
        saved = self._sub_tree()
        root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(name, root)
        self.vars, self.range_depth, self.action_line = saved
        return TemplateNode(tok.pos, name=name, pipe=pipe, tree=self.info)

    def template_control(self) -> Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != _RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, _RIGHT_DELIM)
        return TemplateNode(tok.pos, name=name, pipe=pipe, tree=self.info)

    def template_name(self, tok: _Item, context: str) -> str:
        if tok.typ in (_STRING, _RAW_STRING):
            return self.unquote(tok.val)
        self.unexpected(tok, context)

    def pipeline(self, context: str, end: int) -> PipeNode:
        pipe = PipeNode(self.peek_non_space().pos, tree=self.info)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != _VARIABLE:
                break
            save = self.i
            self.next()
            nxt = self.peek_non_space()
            if nxt.typ in (_ASSIGN, _DECLARE):
                pipe.is_assign = nxt.typ == _ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, ident=v.val.split("."), tree=self.info))
                self.vars.append(v.val)
                break
            if nxt.typ == _CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, ident=v.val.split("."), tree=self.info))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (_VARIABLE, _RIGHT_DELIM, _RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos, tree=self.info)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == _SPACE:
                continue
            if tok.typ in (_RIGHT_DELIM, _RIGHT_PAREN):
                self.backup()
            elif tok.typ != _PIPE:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == _FIELD:
            chain = ChainNode(self.peek().pos, node=node, tree=self.info)
            while self.peek().typ == _FIELD:
                chain.field.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, ident=str(chain)[1:].split("."), tree=self.info)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, ident=str(chain).split("."), tree=self.info)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {_quote(str(node))}")
            return chain
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == _IDENTIFIER:
            if tok.val not in self.funcs:
                self.errorf(f"function {_quote(tok.val)} not defined")
            return IdentifierNode(tok.pos, ident=tok.val, tree=self.info)
        if typ == _DOT:
            return DotNode(tok.pos, tree=self.info)
        if typ == _NIL:
            return NilNode(tok.pos, tree=self.info)
        if typ == _VARIABLE:
            v = VariableNode(tok.pos, ident=tok.val.split("."), tree=self.info)
            if v.ident[0] not in self.vars:
                self.errorf(f"undefined variable {_quote(v.ident[0])}")
            return v
        if typ == _FIELD:
            return FieldNode(tok.pos, ident=tok.val[1:].split("."), tree=self.info)
        if typ == _BOOL:
            return BoolNode(tok.pos, value=tok.val == "true", tree=self.info)
        if typ in (_CHAR_CONSTANT, _COMPLEX, _NUMBER):
            return self.number(tok)
        if typ == _LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", _RIGHT_PAREN)
        if typ in (_STRING, _RAW_STRING):
            return StringNode(tok.pos, quoted=tok.val, text=self.unquote(tok.val), tree=self.info)
        self.backup()
        return None

    def number(self, tok: _Item) -> NumberNode:
        text = tok.val
        n = NumberNode(tok.pos, text=text, tree=self.info)
        if tok.typ == _CHAR_CONSTANT:
            try:
                decoded, j = _unquote_char(text, 1, "'")
            except (ValueError, IndexError):
                self.errorf("invalid syntax")
            if text[j:] != "'":
                self.errorf(f"malformed character constant: {text}")
            r = ord(decoded)
            n.is_int = n.is_uint = n.is_float = True
            n.int_value = r
            n.float_value = float(r)
            return n
        if tok.typ == _COMPLEX or text.endswith("i"):
            self.errorf(f"complex number constants are not supported: {_quote(text)}")
        u = _parse_go_int(text, signed=False)
        i = _parse_go_int(text, signed=True)
        if u is not None:
            n.is_uint = True
        if i is not None:
            n.is_int = True
            n.int_value = i
            if i == 0:
                n.is_uint = True
        if n.is_int:
            n.is_float = True
            n.float_value = float(n.int_value)
        elif n.is_uint and u is not None:
            n.is_float = True
            n.float_value = float(u)
        else:
            f = _parse_go_float(text)
            if f is not None:
                if not any(c in text for c in ".eEpP"):
                    self.errorf(f"integer overflow: {_quote(text)}")
                n.is_float = True
                n.float_value = f
                if math.isfinite(f) and f == int(f):
                    if -(2**63) <= f < 2**63:
                        n.is_int = True
                        n.int_value = int(f)
                    if 0 <= f < 2**64:
                        n.is_uint = True
        if not (n.is_int or n.is_uint or n.is_float):
            self.errorf(f"illegal number syntax: {_quote(text)}")
        return n


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


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


class _State:
    """One execution of a template (Go's ``state``)."""

    def __init__(self, tmpl: Template, dot: Any, out: list[str], depth: int = 0) -> None:
        self.tmpl = tmpl
        self.vars: list[list[Any]] = [["$", dot, False]]  # name, value, interface-typed
        self.out = out
        self.depth = depth
        self.node: Node | None = None
        self.missingkey = tmpl._common.missingkey
        self.funcs = tmpl._common.funcs
        # the current range element when it came out of a []any / map[string]any: its static
        # Go type is interface {} (only used to word "can't evaluate field" errors like Go)
        self.iface_dot: Any = _MISSING
        self.last_from_map = False  # did the last field evaluation read a map?

    # -- errors and variables -----------------------------------------------------------------

    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, msg: str) -> NoReturn:
        name = self.tmpl.name
        node = self.node
        if node is None:
            raise TemplateError(f"template: {name}: {msg}", name=name, phase="exec")
        info = node.tree or self.tmpl._info
        line, col = info.location(node.pos)
        raise TemplateError(
            f"template: {info.parse_name}:{line}:{col}: executing {_quote(name)} at <{node}>: "
            f"{msg}",
            name=name,
            line=line,
            col=col,
            phase="exec",
        )

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                var[2] = False
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        self.errorf(f"undefined variable: {name}")

    # -- walking ------------------------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        if isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            assert node.pipe is not None
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, IfNode):
            self.walk_if_or_with(False, dot, node)
        elif isinstance(node, WithNode):
            self.walk_if_or_with(True, dot, node)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, is_with: bool, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                assert node.list is not None
                if is_with:  # with's dot is the pipeline's (concrete) value
                    saved_iface, self.iface_dot = self.iface_dot, _MISSING
                    try:
                        self.walk(val, node.list)
                    finally:
                        self.iface_dot = saved_iface
                else:
                    self.walk(dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.at(r)
        assert r.pipe is not None and r.list is not None
        outer = self.mark()
        try:
            val = self.eval_pipeline(dot, r.pipe)
            mark = self.mark()
            decl = r.pipe.decl

            def one(index: Any, elem: Any) -> None:
                elem_iface = any_elems and _kind(elem) != "struct"
                if decl:
                    if r.pipe.is_assign:  # type: ignore[union-attr]
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.vars[-1][1:] = [elem, elem_iface]
                if len(decl) > 1:
                    if r.pipe.is_assign:  # type: ignore[union-attr]
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.vars[-2][1:] = [index, False]
                saved_iface = self.iface_dot
                self.iface_dot = elem if elem_iface else _MISSING
                try:
                    self.walk(elem, r.list)  # type: ignore[arg-type]
                except _Continue:
                    pass
                finally:
                    self.iface_dot = saved_iface
                    self.pop(mark)

            kind = _kind(val)
            any_elems = type(val) in (list, tuple, dict)
            try:
                if kind == "slice":
                    if len(val):
                        for i, elem in enumerate(val):
                            one(i, elem)
                        return
                elif kind == "map":
                    if len(val):
                        for k in _sorted_keys(val):
                            one(k, val[k])
                        return
                elif kind == "int":
                    if len(decl) > 1:
                        self.errorf(
                            f"can't use {go_sprint(val)} to iterate over more than one variable"
                        )
                    if val > 0:
                        for i in range(val):
                            one(NO_VALUE, i)
                        return
                elif kind != "invalid":
                    self.errorf(f"range can't iterate over {go_sprint(val)}")
            except _Break:
                return
            if r.else_list is not None:
                self.walk(dot, r.else_list)
        finally:
            self.pop(outer)

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.at(t)
        tmpl = self.tmpl.lookup(t.name)
        if tmpl is None or tmpl.root is None:
            self.errorf(f"template {_quote(t.name)} not defined")
        if self.depth >= MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe)
        new = _State(tmpl, dot, self.out, self.depth + 1)
        new.walk(dot, tmpl.root)

    def print_value(self, node: Node, val: Any) -> None:
        self.at(node)
        if val is NO_VALUE:
            self.out.append("<no value>")
            return
        if _kind(val) == "func" and not _has_stringer(val):
            self.errorf(f"can't print {node} of type {_go_type_name(val)}")
        self.out.append(go_sprint(val))

    # -- evaluation ---------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return NO_VALUE
        self.at(pipe)
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{}: dig down to the invalid value
                value = NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value, False])
        return value

    def not_a_function(self, args: list[Node] | None, final: Any) -> None:
        if (args is not None and len(args) > 1) or final is not _MISSING:
            assert args is not None
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {_quote(str(first))}")

    def ideal_constant(self, n: NumberNode) -> Any:
        self.at(n)
        text = n.text
        is_hex_int = (
            len(text) > 2
            and text[0] == "0"
            and text[1] in "xX"
            and not any(c in "pP" for c in text)
        )
        if n.is_float and not is_hex_int and text[:1] != "'" and any(c in ".eEpP" for c in text):
            return n.float_value
        if n.is_int:
            return n.int_value
        if n.is_uint:
            self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_field_node(
        self, dot: Any, field: FieldNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(field)
        iface = self.iface_dot is not _MISSING and dot is self.iface_dot
        return self.eval_field_chain(dot, dot, field, field.ident, args, final, iface)

    def eval_chain_node(
        self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(chain)
        if not chain.field:
            self.errorf("internal error: no fields in evalChainNode")
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        assert chain.node is not None
        pipe = self.eval_arg(dot, "", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_variable_node(
        self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        node: Node,
        ident: list[str],
        args: list[Node] | None,
        final: Any,
        iface: bool = False,
    ) -> Any:
        # iface: the receiver came out of a map[string]any: its static Go type is interface {}
        for name in ident[:-1]:
            from_map = _kind(receiver) == "map"
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver, iface)
            iface = from_map
        return self.eval_field(dot, ident[-1], node, args, final, receiver, iface)

    def eval_field(
        self,
        dot: Any,
        name: str,
        node: Node,
        args: list[Node] | None,
        final: Any,
        receiver: Any,
        iface: bool = False,
    ) -> Any:
        if receiver is NO_VALUE:
            if self.missingkey == "error":
                self.errorf(f"nil data; no entry for key {_quote(name)}")
            return NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        kind = _kind(receiver)
        if kind == "map":
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            self.last_from_map = True
            if name in receiver:
                return receiver[name]
            if self.missingkey == "zero":
                return None
            if self.missingkey == "error":
                self.errorf(f"map has no entry for key {_quote(name)}")
            return NO_VALUE
        if kind == "struct":
            self.last_from_map = False
            if _is_exported(name):
                attr = getattr(receiver, name, _MISSING)
                if attr is not _MISSING:
                    if inspect.ismethod(attr):
                        return self.eval_method(dot, attr, node, name, args, final)
                    if has_args:
                        self.errorf(f"{name} has arguments but cannot be invoked as function")
                    return attr
            elif hasattr(receiver, name) and name in _struct_attrs(receiver):
                self.errorf(
                    f"{name} is an unexported field of struct type {_go_type_name(receiver)}"
                )
        typ = "interface {}" if iface else _go_type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {typ}")

    def eval_method(
        self,
        dot: Any,
        method: Callable[..., Any],
        node: Node,
        name: str,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        arg_nodes = args[1:] if args else []
        argv = [self.eval_arg(dot, "A", a) for a in arg_nodes]
        if final is not _MISSING:
            argv.append(self.validate_type(final, "A"))
        try:
            sig = inspect.signature(method)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            params = list(sig.parameters.values())
            variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
            fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if variadic and len(argv) < len(fixed):
                self.errorf(
                    f"wrong number of args for {name}: want at least {len(fixed)} got {len(argv)}"
                )
            if not variadic and len(argv) != len(fixed):
                self.errorf(f"wrong number of args for {name}: want {len(fixed)} got {len(argv)}")
        try:
            return method(*argv)
        except Exception as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def eval_function(
        self,
        dot: Any,
        node: IdentifierNode,
        cmd: Node,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        self.at(node)
        name = node.ident
        fn = self.funcs.get(name)
        if fn is None:
            self.errorf(f"{_quote(name)} is not a defined function")
        return self.eval_call(dot, fn, cmd, name, args, final)

    def eval_call(
        self,
        dot: Any,
        fn: _Func,
        node: Node,
        name: str,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        arg_nodes = args[1:] if args is not None else []
        num_in = len(arg_nodes) + (final is not _MISSING)
        num_fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < num_fixed:
                self.errorf(
                    f"wrong number of args for {name}: want at least {num_fixed} "
                    f"got {len(arg_nodes)}"
                )
        elif num_in != num_fixed:
            self.errorf(f"wrong number of args for {name}: want {num_fixed} got {num_in}")

        if name in ("and", "or") and fn is _BUILTINS[name]:
            v: Any = NO_VALUE
            for a in arg_nodes:
                v = self.eval_arg(dot, "V", a)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = self.validate_type(final, "V")
            return v

        def kind_at(i: int) -> str:
            return fn.params[i] if i < num_fixed else (fn.variadic or "A")

        argv = [self.eval_arg(dot, kind_at(i), a) for i, a in enumerate(arg_nodes)]
        if name == "slice" and fn is _BUILTINS[name]:
            # Go's slice does not unwrap interface-typed indexes (index does)
            for i, a in enumerate(arg_nodes[1:], start=1):
                if self.arg_is_iface(dot, a, argv[i]):
                    argv[i] = _IfaceIndex(argv[i])
        if final is not _MISSING:
            argv.append(self.validate_type(final, kind_at(num_in - 1)))
        try:
            return fn.impl(*argv)
        except _CallError as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def arg_is_iface(self, dot: Any, node: Node, value: Any) -> bool:
        """Whether an argument just evaluated has the static Go type interface {}."""
        if value is NO_VALUE:
            return False
        if isinstance(node, (FieldNode, ChainNode)) or (
            isinstance(node, VariableNode) and len(node.ident) > 1
        ):
            return self.last_from_map
        if isinstance(node, VariableNode):
            return next((v[2] for v in reversed(self.vars) if v[0] == node.ident[0]), False)
        if isinstance(node, DotNode):
            return self.iface_dot is not _MISSING and dot is self.iface_dot
        return False

    def validate_type(self, value: Any, kind: str) -> Any:
        """Go's validateType for the parameter kinds V, A, S ("" = untyped)."""
        if kind == "S":
            if value is NO_VALUE:
                self.errorf("invalid value; expected string")
            if not isinstance(value, str):
                self.errorf(f"wrong type for value; expected string; got {_go_type_name(value)}")
            return value
        if kind == "A" and value is NO_VALUE:
            return None
        return value

    def eval_arg(self, dot: Any, kind: str, n: Node) -> Any:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, kind)
        if isinstance(n, NilNode):
            if kind == "S":
                self.errorf("cannot assign nil to string")
            return None if kind == "A" else NO_VALUE
        if isinstance(n, FieldNode):
            return self.validate_type(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, _MISSING), kind)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, None, _MISSING), kind)
        if kind == "S":
            if isinstance(n, StringNode):
                return n.text
            self.errorf(f"expected string; found {n}")
        if isinstance(n, BoolNode):
            return n.value
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        if isinstance(n, StringNode):
            return n.text
        self.errorf(f"can't handle assignment of {n} to empty interface argument")


# ---------------------------------------------------------------------------------------------
# Template
# ---------------------------------------------------------------------------------------------


class _Common:
    """The namespace shared by a template and the templates it defines."""

    __slots__ = ("funcs", "missingkey", "templates")

    def __init__(self, funcs: dict[str, _Func], missingkey: str) -> None:
        self.templates: dict[str, Template] = {}
        self.funcs = funcs
        self.missingkey = missingkey


_MISSINGKEY_OPTIONS = ("zero", "default", "invalid", "error")


class Template:
    """A parsed Go template plus the templates it defines (``{{define}}``/``{{block}}``).

    Build one with ``Template.parse``; ``root`` is the parse tree of this template.
    """

    def __init__(self, name: str, root: ListNode | None, common: _Common, info: _TreeInfo) -> None:
        self.name = name
        self.root = root
        self._common = common
        self._info = info

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, name: str = "", *, missingkey: str = "zero") -> Template:
        """Parse ``text`` as Ollama does (``missingkey=zero``, Ollama's extra functions).

        Raises ``TemplateError`` with Go's message (``template: NAME:LINE: ...``).
        ``missingkey`` is Go's option: ``zero`` (Ollama), ``default``/``invalid`` or ``error``.
        """
        if missingkey not in _MISSINGKEY_OPTIONS:
            raise ValueError(f"unrecognized missingkey option {missingkey!r}")
        funcs = {**_BUILTINS, **_OLLAMA_FUNCS}
        parser = _Parser(name, text, set(funcs))
        trees = parser.parse()
        common = _Common(funcs, missingkey)
        for tname, root in trees.items():
            common.templates[tname] = Template(tname, root, common, parser.info)
        return common.templates[name]

    def _derived(self, root: ListNode) -> Template:
        """A copy of this template (same namespace members, copied) with another root."""
        common = _Common(self._common.funcs, self._common.missingkey)
        for tname, t in self._common.templates.items():
            if tname != self.name:
                common.templates[tname] = Template(tname, t.root, common, t._info)
        new = Template(self.name, root, common, self._info)
        common.templates[self.name] = new
        return new

    # -- execution ----------------------------------------------------------------------------

    def execute(self, data: Any = None) -> str:
        """Render the template with ``data`` as dot (``$``); raises ``TemplateError``."""
        out: list[str] = []
        dot = NO_VALUE if data is None else data
        state = _State(self, dot, out)
        if self.root is None:
            state.errorf(f"{_quote(self.name)} is an incomplete or empty template")
        try:
            state.walk(dot, self.root)
        except RecursionError:
            raise TemplateError(
                f"template: {self.name}: exceeded maximum template depth ({MAX_EXEC_DEPTH})",
                name=self.name,
                phase="exec",
            ) from None
        return "".join(out)

    # -- namespace ----------------------------------------------------------------------------

    def lookup(self, name: str) -> Template | None:
        """The associated template called ``name`` (Go's ``Lookup``)."""
        return self._common.templates.get(name)

    def templates(self) -> list[Template]:
        """This template and every template it defines (Go's ``Templates``)."""
        return list(self._common.templates.values())

    def __str__(self) -> str:
        return str(self.root) if self.root is not None else ""

    def __repr__(self) -> str:
        return f"Template({self.name!r})"

    # -- Ollama helpers -----------------------------------------------------------------------

    def identifiers(self) -> list[str]:
        """Every field and variable name, as Ollama's ``template.Identifiers`` walks them.

        Walks the root of every associated template; ``.Function.Name`` contributes
        ``Function`` and ``Name``, ``$.Messages`` contributes ``$`` and ``Messages``. Like
        Ollama, a ``{{template "x"}}`` without a pipeline is an error
        (``TemplateError("undefined template specified")``).
        """
        names: list[str] = []
        for t in self.templates():
            if t.root is not None:
                for n in t.root.nodes:
                    names.extend(_identifiers(n))
        return names

    def vars(self) -> list[str]:
        """Ollama's ``Template.Vars``: the identifiers, lower-cased, unique, sorted."""
        return sorted({n.lower() for n in self.identifiers()})

    def references(self, name: str) -> bool:
        """Whether the template references ``name`` (``"Messages"`` or ``".Messages"``),
        case-insensitively, as Ollama's ``slices.Contains(vars, "messages")`` checks."""
        return name.lstrip(".").lower() in self.vars()

    def with_appended(self, node: Node) -> Template:
        """A copy whose root has ``node`` appended (Ollama's auto ``{{ .Response }}``)."""
        root = ListNode(self.root.pos if self.root else 0, tree=self._info)
        root.nodes = [*(self.root.nodes if self.root else []), node]
        return self._derived(root)

    def delete_nodes(self, fn: Callable[[Node], bool]) -> ListNode | None:
        """Ollama's ``deleteNode`` on a copy of the root: walk it, dropping the nodes for which
        ``fn`` returns true (``fn`` sees list, branch, action, pipe and argument nodes)."""
        if self.root is None:
            return None
        result = _delete_node(self.root.copy(), fn)
        return result if isinstance(result, ListNode) else None

    def cut_at_response(self) -> Template:
        """The template Ollama executes for the last turn of a legacy prompt (TPL-08).

        Everything after the first ``.Response`` field is removed (the field itself stays),
        recursively through control structures, exactly as Ollama's ``deleteNode``. As in
        Ollama the result is a fresh template: built-in functions only (no ``json``...), no
        ``define``d templates and the default ``missingkey`` option.
        """
        cut = False

        def fn(n: Node) -> bool:
            nonlocal cut
            if isinstance(n, FieldNode) and "Response" in n.ident:
                cut = True
                return False
            return cut

        root = self.delete_nodes(fn) or ListNode(0, tree=self._info)
        common = _Common(dict(_BUILTINS), "default")
        new = Template("", root, common, _TreeInfo("", ""))
        common.templates[""] = new
        return new

    def infer_thinking_tags(self) -> tuple[str, str]:
        """Ollama's ``thinking.InferTags`` (TPL-14): the trimmed first/last text around the
        ``{{ .Thinking }}`` inside a ``range`` over ``.Messages``; ``("", "")`` if none."""
        opening = closing = ""
        ancestors: list[Node] = []

        def enter(n: Node) -> None:
            nonlocal opening, closing
            if isinstance(n, FieldNode) and n.ident and n.ident[0] == "Thinking":
                rng = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
                if rng is None or not _range_uses_field(rng, "Messages"):
                    return
                lst = next((a for a in reversed(ancestors) if isinstance(a, ListNode)), None)
                if lst is not None and lst.nodes:
                    if isinstance(lst.nodes[0], TextNode):
                        opening = _go_trim_space(lst.nodes[0].text)
                    if isinstance(lst.nodes[-1], TextNode):
                        closing = _go_trim_space(lst.nodes[-1].text)

        def visit(n: Node | None) -> None:
            if n is None:
                return
            ancestors.append(n)
            enter(n)
            for c in _visit_children(n):
                visit(c)
            ancestors.pop()

        visit(self.root)
        return opening, closing

    def tool_call_tag(self) -> str:
        """Ollama's ``tools.parseTag`` (GF-20): the first non-blank text inside the
        ``{{ if .ToolCalls }}`` block, cut before any ``{`` and trimmed; ``"{"`` if none."""
        if self.root is None:
            return "{"
        tc = _find_tool_call_node(self.root.nodes)
        if tc is None or tc.list is None:
            return "{"
        tn = _find_text_node(tc.list.nodes)
        if tn is None:
            return "{"
        tag = tn.text.replace("\r\n", "\n").split("{", 1)[0]
        tag = _go_trim_space(tag)
        return tag or "{"


def _identifiers(n: Node | None) -> list[str]:
    if isinstance(n, ListNode):
        return [i for c in n.nodes for i in _identifiers(c)]
    if isinstance(n, TemplateNode):
        if n.pipe is None:
            raise TemplateError("undefined template specified", phase="parse")
        return _identifiers(n.pipe)
    if isinstance(n, ActionNode):
        if n.pipe is None:
            raise TemplateError("undefined action in template", phase="parse")
        return _identifiers(n.pipe)
    if isinstance(n, BranchNode):
        if n.pipe is None:
            raise TemplateError("undefined branch", phase="parse")
        names = _identifiers(n.pipe)
        for lst in (n.list, n.else_list):
            if lst is not None:
                names.extend(_identifiers(lst))
        return names
    if isinstance(n, PipeNode):
        return [i for c in n.cmds for a in c.args for i in _identifiers(a)]
    if isinstance(n, (FieldNode, VariableNode)):
        return list(n.ident)
    return []


class _CutPanic(TemplateError):
    pass


def _delete_node(n: Node, fn: Callable[[Node], bool]) -> Node | None:
    """Ollama's deleteNode (template.go), node for node."""
    if fn(n):
        return None
    if isinstance(n, ListNode):
        kept = []
        for c in n.nodes:
            r = _delete_node(c, fn)
            if r is not None:
                kept.append(r)
        n.nodes = kept
        return n
    if isinstance(n, BranchNode):
        # Go walks the embedded BranchNode value (the predicate sees it too), then List and
        # ElseList; a deleted list there is a nil-interface conversion panic in Ollama.
        if fn(n):
            raise _CutPanic("interface conversion: parse.Node is nil, not *parse.BranchNode")
        assert n.list is not None
        lst = _delete_node(n.list, fn)
        if lst is None:
            raise _CutPanic("interface conversion: parse.Node is nil, not *parse.ListNode")
        n.list = lst  # type: ignore[assignment]
        if n.else_list is not None:
            el = _delete_node(n.else_list, fn)
            if el is None:
                raise _CutPanic("interface conversion: parse.Node is nil, not *parse.ListNode")
            n.else_list = el  # type: ignore[assignment]
        return n
    if isinstance(n, ActionNode):
        assert n.pipe is not None
        p = _delete_node(n.pipe, fn)
        if p is None:
            return None
        n.pipe = p  # type: ignore[assignment]
        return n
    if isinstance(n, PipeNode):
        commands = []
        for c in n.cmds:
            args = []
            for a in c.args:
                r = _delete_node(a, fn)
                if r is not None:
                    args.append(r)
            if not args:
                return None
            c.args = args
            commands.append(c)
        if not commands:
            return None
        n.cmds = commands
        return n
    return n


def _visit_children(n: Node) -> list[Node]:
    """Children in the order Ollama's thinking.templateVisit walks them."""
    if isinstance(n, ListNode):
        return list(n.nodes)
    if isinstance(n, BranchNode):
        return [c for c in (n.pipe, n.list, n.else_list) if c is not None]
    if isinstance(n, (ActionNode, TemplateNode)):
        return [n.pipe] if n.pipe is not None else []
    if isinstance(n, PipeNode):
        return list(n.cmds)
    if isinstance(n, CommandNode):
        return list(n.args)
    return []


def _range_uses_field(r: RangeNode, field: str) -> bool:
    found = False

    def visit(n: Node) -> None:
        nonlocal found
        if isinstance(n, FieldNode) and n.ident and n.ident[0] == field:
            found = True
        for c in _visit_children(n):
            visit(c)

    if r.pipe is not None:
        visit(r.pipe)
    return found


def _find_tool_call_node(nodes: list[Node]) -> IfNode | None:
    def is_tool_calls(n: IfNode) -> bool:
        return any(
            isinstance(a, FieldNode) and "ToolCalls" in a.ident
            for c in (n.pipe.cmds if n.pipe else [])
            for a in c.args
        )

    for n in nodes:
        if isinstance(n, IfNode) and is_tool_calls(n):
            return n
        if isinstance(n, BranchNode):
            for lst in (n.list, n.else_list):
                if lst is not None:
                    found = _find_tool_call_node(lst.nodes)
                    if found is not None:
                        return found
        elif isinstance(n, ListNode):
            found = _find_tool_call_node(n.nodes)
            if found is not None:
                return found
    return None


def _find_text_node(nodes: list[Node]) -> TextNode | None:
    for n in nodes:
        if isinstance(n, TextNode):
            if _go_trim_space(n.text) == "":
                continue
            return n
        if isinstance(n, BranchNode):
            for lst in (n.list, n.else_list):
                if lst is not None:
                    found = _find_text_node(lst.nodes)
                    if found is not None:
                        return found
            return None
        if isinstance(n, ListNode):
            found = _find_text_node(n.nodes)
            if found is not None:
                return found
        elif isinstance(n, ActionNode):
            return None
    return None


def iter_nodes(n: Node | None) -> Iterator[Node]:
    """Every node of a subtree, depth first, parents before children (lists, branch pipes and
    bodies, action/template pipes, commands, arguments and the operand of a chain)."""
    if n is None:
        return
    yield n
    if isinstance(n, ChainNode) and n.node is not None:
        yield from iter_nodes(n.node)
    for c in _visit_children(n):
        yield from iter_nodes(c)
