"""Go's ``strconv``: quoting, float formatting, ``Unquote`` and number literals."""

from __future__ import annotations

import math

from pollama.template.go.values import _from_utf8, _is_go_print, _utf8

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


def format_float(f: float, fmt: str, prec: int) -> str:
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
