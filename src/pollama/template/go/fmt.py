"""Go's ``fmt``: ``Sprint``, ``Sprintln``, ``Sprintf`` over the Go value model."""

from __future__ import annotations

from typing import Any

from pollama.template.go.strconv import _LHEX, _can_backquote, _quote, _quote_rune, format_float
from pollama.template.go.values import (
    NO_VALUE,
    _go_type_name,
    _is_go_print,
    _kind,
    _sorted_keys,
    _struct_attrs,
    _utf8,
)

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
        num = format_float(v, verb, prec)
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
