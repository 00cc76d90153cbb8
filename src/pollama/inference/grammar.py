"""Constrained output: `format` ("json" or a JSON schema, spec GF-10) → GBNF, and raw GBNF.

Beyond Ollama, a raw GBNF grammar can be sent as `options.grammar` (any client that passes
options through) or as a top-level `grammar` field; it constrains the whole output and cannot be
combined with `format`. A grammar that does not parse is a 400 naming the line and column,
checked here so a bad grammar never reaches a runner.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any, NoReturn

from pollama.errors import BadRequest

_CHAR_RULE = re.compile(r"^char ::= .*$", re.MULTILINE)
_STRICT_CHAR = (r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})')


# llama.cpp's schema converter writes a bounded repetition out in full (`maxLength: n` is n
# nested groups, a pattern's `a{n}` n copies), so a schema may ask for this many at most in all:
# more would take the server's memory or crash the runner's grammar parser.
MAX_SCHEMA_REPETITIONS = 100_000
_REPEAT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _pattern_size(pattern: str) -> int:
    """How many items a regex pattern expands to once its `{m,n}` counts are written out
    (nested counts multiply); an upper estimate, enough to refuse the absurd."""
    groups = [[0, 0]]  # per open group: [size so far, size of its last item]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        item = 1
        if c == "\\":
            i += 2
        elif c == "[":
            i += 1
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
        elif c == "(":
            groups.append([0, 0])
            i += 1
            continue
        elif c == ")" and len(groups) > 1:
            item = groups.pop()[0]
            i += 1
        elif c == "{" and (count := _COUNT.match(pattern, i)):
            times = max(int(count.group(1)), int(count.group(2) or 0))
            top = groups[-1]
            top[0] += top[1] * (times - 1)
            top[1] *= times
            if top[0] > MAX_SCHEMA_REPETITIONS:
                return top[0]
            i = count.end()
            continue
        else:
            i += 1
        groups[-1][0] += item
        groups[-1][1] = item
    return sum(group[0] for group in groups)


def _repetitions(schema: Any) -> int:
    """The repetitions a JSON schema's bounds and patterns ask the converter to write out."""
    total = 0
    pending = [schema]
    while pending and total <= MAX_SCHEMA_REPETITIONS:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _REPEAT_KEYWORDS and isinstance(value, int | float):
                    total += int(min(abs(value), MAX_SCHEMA_REPETITIONS + 1))
                elif key == "pattern" and isinstance(value, str):
                    total += _pattern_size(value)
                else:
                    pending.append(value)
    return total


def bounded_schema_grammar(schema: dict[str, Any]) -> str:
    """`schema_grammar`, or a ValueError saying why the schema cannot be enforced: not a
    schema the converter reads, or one whose grammar would be too large or too deep."""
    if _repetitions(schema) > MAX_SCHEMA_REPETITIONS:
        raise ValueError(f"its lengths, item counts and pattern repetitions add up to more "
                         f"than {MAX_SCHEMA_REPETITIONS}")
    try:
        grammar = schema_grammar(schema)
    except Exception as err:  # the converter's own errors: KeyError, AttributeError, ...
        raise ValueError(str(err) or type(err).__name__) from None
    try:
        _GBNFChecker(grammar).check()
    except _GBNFUnknown:
        pass
    except _GBNFError as err:  # too deep for the runner's parser, e.g. a long maxLength
        raise ValueError(f"its grammar is too complex: {err}") from None
    return grammar


def format_grammar(fmt: Any) -> str | None:
    """`format` → GBNF: "json" any object, a JSON schema its own grammar (spec GF-10)."""
    if fmt is None or fmt == "" or fmt == "null":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF

    if fmt == "json":
        return JSON_GBNF
    if isinstance(fmt, dict):
        try:
            return bounded_schema_grammar(fmt)
        except ValueError as err:
            raise BadRequest(f"invalid format: {json.dumps(fmt)}; expected \"json\" or a "
                             f"valid JSON Schema object ({err})") from None
    raise BadRequest(f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object')


_LITERAL_ESCAPES = {"\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}


def _gbnf_literal(text: str) -> str:
    """A GBNF string literal: llama.cpp's own converter escapes backslashes too;
    llama-cpp-python's copy does not, so `"a\\"b"` (a JSON string with a quote) broke
    the grammar of any schema whose const/enum value or property name holds `"` or `\\`."""
    return '"' + "".join(_LITERAL_ESCAPES.get(c, c) for c in text) + '"'


def schema_grammar(schema: dict[str, Any]) -> str:
    """A JSON schema → the GBNF of the JSON values it allows (root rule `root`)."""
    from llama_cpp.llama_grammar import SchemaConverter

    class _Converter(SchemaConverter):  # type: ignore[misc]
        def _format_literal(self, literal: str) -> str:
            return _gbnf_literal(literal)

    converter = _Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    converter.visit(converter.resolve_refs(schema, "stdin"), "")
    grammar: str = converter.format_grammar()
    # llama-cpp-python lets raw control characters into strings, which JSON forbids;
    # use llama.cpp's own rule (as llama-server's converter does)
    return _CHAR_RULE.sub(lambda _m: _STRICT_CHAR, grammar)


# -- raw GBNF grammars -----------------------------------------------------------------------

_GBNF_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_GBNF_ESCAPES = {"x": 2, "u": 4, "U": 8}


# Bounds that keep a grammar from crashing a runner: llama.cpp's parser recurses once per
# nested group, and its stack walk once per rule reference in a chain; past ~16,000 groups or
# ~100,000 chained rules the runner dies of a segmentation fault (and every answer in it).
MAX_GRAMMAR_DEPTH = 1000
MAX_GRAMMAR_RULES = 20000


class _GBNFError(ValueError):
    pass


class _GBNFChecker:
    """llama.cpp's GBNF syntax (grammar-parser), checked before a request reaches a runner.

    Rules `name ::= alternatives` (names of letters, digits and `-`), literals, `[...]`
    classes, `.`, groups, `* + ? {m,n}`, `#` comments. Constructs it does not know (token
    references `<...>`, `!`) stop the check: the runner decides those.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.defined: set[str] = set()
        self.used: dict[str, int] = {}

    def fail(self, what: str) -> NoReturn:
        line = self.text.count("\n", 0, self.pos) + 1
        col = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        raise _GBNFError(f"{what} at line {line} column {col}")

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos:self.pos + n]

    def space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.pos += 1
            elif ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] not in "\r\n":
                    self.pos += 1
            else:
                break

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _GBNF_WORD:
            self.pos += 1
        if self.pos == start:
            self.fail("expecting a rule name")
        return self.text[start:self.pos]

    def check(self) -> None:
        self.space(True)
        while self.pos < len(self.text):
            self.defined.add(self.name())
            if len(self.defined) > MAX_GRAMMAR_RULES:
                self.fail(f"more than {MAX_GRAMMAR_RULES} rules")
            self.space(False)
            if self.peek(3) != "::=":
                self.fail("expecting ::=")
            self.pos += 3
            self.space(True)
            self.alternates()
            if self.pos < len(self.text) and self.peek() not in "\r\n":
                self.fail("expecting newline or end")
            self.space(True)
        for name, pos in self.used.items():
            if name not in self.defined:
                self.pos = pos
                self.fail(f'undefined rule "{name}"')
        if "root" not in self.defined:
            raise _GBNFError('the grammar has no "root" rule')

    def char(self) -> None:
        if self.pos >= len(self.text):
            self.fail("unexpected end of input")
        if self.text[self.pos] == "\\":
            esc = self.peek(2)[1:]
            if esc in _GBNF_ESCAPES:
                digits = self.text[self.pos + 2:self.pos + 2 + _GBNF_ESCAPES[esc]]
                if len(digits) != _GBNF_ESCAPES[esc] or any(
                        c not in string.hexdigits for c in digits):
                    self.fail("expecting hex digits")
                self.pos += 2 + len(digits)
            elif esc and esc in 'trn\\"[]':
                self.pos += 2
            else:
                self.fail("unknown escape")
        else:
            self.pos += 1

    def alternates(self) -> None:
        """A rule's body: sequences of items separated by `|`, with groups. Groups are
        tracked by depth, not by recursion, so a deep grammar cannot exhaust Python's stack."""
        depth = 0
        last = False  # an item precedes (a repetition may follow)
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                while self.peek() != '"':
                    self.char()
                self.pos += 1
            elif ch == "[":
                self.pos += 1
                if self.peek() == "^":
                    self.pos += 1
                while self.peek() != "]":
                    self.char()
                    if self.peek() == "-" and self.peek(2) != "-]":
                        self.pos += 1
                        self.char()
                self.pos += 1
            elif ch in _GBNF_WORD:
                start = self.pos
                self.used.setdefault(self.name(), start)
            elif ch == "(":
                depth += 1
                if depth > MAX_GRAMMAR_DEPTH:
                    self.fail(f"groups nested more than {MAX_GRAMMAR_DEPTH} deep")
                self.pos += 1
                self.space(True)
                last = False
                continue
            elif ch == ")" and depth:
                depth -= 1
                self.pos += 1
            elif ch == "|":
                self.pos += 1
                self.space(True)
                last = False
                continue
            elif ch == ".":
                self.pos += 1
            elif ch in "*+?{":
                if not last:
                    self.fail(f"expecting an item before '{ch}'")
                if ch == "{":
                    end = self.text.find("}", self.pos)
                    spec = self.text[self.pos + 1:end].replace(" ", "") if end > 0 else ""
                    if not re.fullmatch(r"\d+(,\d*)?", spec):
                        self.fail("malformed repetition count")
                    self.pos = end
                self.pos += 1
            elif ch in "<!":
                raise _GBNFUnknown
            else:
                break
            last = True
            self.space(depth > 0)
        if depth:
            self.fail("expecting ')'")


class _GBNFUnknown(Exception):
    pass


def check_grammar(text: str) -> None:
    """Raise BadRequest naming the first GBNF syntax error of a user's `grammar`."""
    if not text.strip():
        raise BadRequest("invalid grammar: the grammar is empty")
    try:
        _GBNFChecker(text).check()
    except _GBNFUnknown:
        return
    except _GBNFError as err:
        raise BadRequest(f"invalid grammar: {err}") from None


def split_grammar(options: dict[str, Any] | None, field: str | None
                  ) -> tuple[dict[str, Any] | None, str | None]:
    """Take a raw GBNF `grammar` out of `options` (or the request's own `grammar` field).

    Beyond Ollama: `options: {"grammar": "root ::= ..."}` works through every client that
    passes options through (the official ones do); the top-level field wins when both are set.
    """
    grammar = field or None
    if options and "grammar" in options:
        options = dict(options)
        value = options.pop("grammar")
        if value is not None and not isinstance(value, str):
            raise BadRequest('option "grammar" must be of type string')
        grammar = grammar or value or None
    return options, grammar


def request_grammar(fmt: Any, raw_grammar: str | None) -> str | None:
    """The GBNF a request constrains its answer with: from `format`, or the raw `grammar`."""
    grammar = format_grammar(fmt)
    if raw_grammar is None:
        return grammar
    if grammar is not None:
        raise BadRequest("format and grammar cannot be used together")
    check_grammar(raw_grammar)
    return raw_grammar
