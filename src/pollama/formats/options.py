"""Ollama's runtime options (`api.Options` + `api.Runner`): names, Go types, defaults, parsing.

Values reach a model from two kinds of source, each with its own parser and error texts:

- `from_map()`: the JSON `options` object of an API request, and a model's stored params layer
  (Ollama's `Options.FromMap`). JSON numbers fit int options (floats are truncated toward zero);
  unknown or legacy keys are logged (`invalid option provided`) and dropped; a wrong type is an
  `InvalidOption` (`option "top_k" must be of type integer`): a 400, where Ollama answers 500
  (a deliberate departure: the request is at fault, not the server).
- `format_params()`: the strings of a Modelfile `PARAMETER` or the REPL's `/set parameter`
  (Ollama's `FormatParams`), parsed with Go's strconv rules; errors are `ModelfileError`s
  (`unknown parameter 'foo'`, `invalid int value [abc]`).

Load-time options (`RUNNER_OPTIONS`) need a model reload when they change; the rest apply per
request. Precedence is `DEFAULT_OPTIONS` ← model params ← request options (`resolve()`).
Float options are float32 in Go: values are rounded to float32 and kept as the shortest decimal
that round-trips, so they print and serialise as Go prints a float32 (0.7, not 0.699999988).
"""

from __future__ import annotations

import logging
import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pollama import go
from pollama.errors import BadRequest, ModelfileError

log = logging.getLogger(__name__)

INT = "int"
FLOAT = "float"
BOOL = "bool"
STRING = "string"
STRINGS = "[]string"


class InvalidOption(BadRequest):
    """An API `options` value of the wrong JSON type: 400 with Ollama's text (Ollama: 500)."""


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: JSON name, Go kind, default, load-time or not, and Go pointer (None = unset)."""

    name: str
    kind: str
    default: Any
    runner: bool = False
    nullable: bool = False


_SPECS = (
    # api.Runner: set when the model is loaded.
    OptionSpec("num_ctx", INT, 0, runner=True),  # 0 = auto: OLLAMA_CONTEXT_LENGTH or VRAM tier
    OptionSpec("num_batch", INT, 512, runner=True),
    OptionSpec("num_gpu", INT, -1, runner=True),  # -1 = let the runtime decide
    OptionSpec("main_gpu", INT, None, runner=True, nullable=True),
    OptionSpec("use_mmap", BOOL, None, runner=True, nullable=True),  # None = auto
    OptionSpec("num_thread", INT, 0, runner=True),  # 0 = let the runtime decide
    OptionSpec("draft_num_predict", INT, 4, runner=True),
    # api.Options: per request.
    OptionSpec("num_keep", INT, 4),
    OptionSpec("seed", INT, -1),
    OptionSpec("num_predict", INT, -1),
    OptionSpec("top_k", INT, 40),
    OptionSpec("top_p", FLOAT, 0.9),
    OptionSpec("min_p", FLOAT, 0.0),
    OptionSpec("typical_p", FLOAT, 1.0),
    OptionSpec("repeat_last_n", INT, 64),
    OptionSpec("temperature", FLOAT, 0.8),
    OptionSpec("repeat_penalty", FLOAT, 1.0),
    OptionSpec("presence_penalty", FLOAT, 0.0),
    OptionSpec("frequency_penalty", FLOAT, 0.0),
    OptionSpec("stop", STRINGS, None),
)

OPTIONS: Mapping[str, OptionSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""Every option Ollama knows, in `api.Options` field order."""

OPTION_TYPES: Mapping[str, str] = MappingProxyType({s.name: s.kind for s in _SPECS})
"""Option name → Go kind: "int", "float", "bool", "string" or "[]string"."""

DEFAULT_OPTIONS: Mapping[str, Any] = MappingProxyType({s.name: s.default for s in _SPECS})
"""Ollama's `api.DefaultOptions()`; None = unset (`main_gpu`, `use_mmap`, `stop`)."""

RUNNER_OPTIONS: frozenset[str] = frozenset(s.name for s in _SPECS if s.runner)
"""Load-time options: a change means the runner must be reloaded."""

DEPRECATED_PARAMETERS: tuple[str, ...] = (
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
    "mirostat", "mirostat_tau", "mirostat_eta",
)
"""Modelfile PARAMETERs that warn `parameter <name> is deprecated` and are skipped (MF-17)."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def to_float32(value: float) -> float:
    """`value` rounded to float32, as the shortest decimal that round-trips (Go prints that)."""
    if math.isnan(value) or math.isinf(value):
        return value
    single = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == single:
            return float(text)
    return single


# -- the OpenAPI description of `options` --

# What each option means to the engine, for the API schema only: `from_map` stays the judge of
# what a request may send (Go's types, no ranges), so a value outside these bounds is not refused
# by the schema's word alone; it documents the useful range (0 = auto where the default is 0).
_SCHEMA_BOUNDS: Mapping[str, tuple[float | None, float | None, str]] = MappingProxyType({
    "num_ctx": (0, None, "context window in tokens; 0 = OLLAMA_CONTEXT_LENGTH or the default, "
                "at most the model's training context"),
    "num_batch": (1, None, "prompt tokens decoded per batch; 0 or less = the default, at "
                  "least one per slot, at most the context"),
    "num_gpu": (-1, None, "layers to offload to a GPU; -1 = let the runtime decide"),
    "main_gpu": (0, None, "the GPU that holds small tensors"),
    "use_mmap": (None, None, "map the model file instead of reading it; unset = auto"),
    "num_thread": (0, 512, "CPU threads; 0 = let the runtime decide; more than 512 is a 400"),
    "num_keep": (-1, None, "prompt tokens kept when the context shifts; -1 = all"),
    "seed": (None, None, "sampling seed; -1 = random"),
    "num_predict": (-2, None, "tokens to generate; -1 = until done, -2 = fill the context"),
    "top_k": (0, None, "sample from the k most likely tokens; 0 = off"),
    "top_p": (0, 1, "nucleus sampling: smallest set of tokens with this total probability"),
    "min_p": (0, 1, "drop tokens below this fraction of the best token's probability"),
    "typical_p": (0, 1, "locally typical sampling; 1 = off"),
    "repeat_last_n": (-1, None, "tokens looked back at for penalties; -1 = num_ctx, 0 = off"),
    "temperature": (0, None, "randomness; 0 = greedy"),
    "repeat_penalty": (0, None, "penalty for repeated tokens; 1 = off"),
    "presence_penalty": (None, None, "penalty for tokens already present"),
    "frequency_penalty": (None, None, "penalty by how often a token appeared"),
    "stop": (None, None, "strings that end the answer"),
})
_JSON_KINDS = {INT: "integer", FLOAT: "number", BOOL: "boolean", STRING: "string"}
# Refused until implemented (speculative decoding): left out of the schema, not accepted.
_UNDOCUMENTED = frozenset({"draft_num_predict"})


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an API `options` object (OpenAPI), from the specs above."""
    properties: dict[str, Any] = {}
    for spec in _SPECS:
        if spec.name in _UNDOCUMENTED:
            continue
        low, high, description = _SCHEMA_BOUNDS[spec.name]
        kind: dict[str, Any] = ({"type": "array", "items": {"type": "string"}}
                                if spec.kind == STRINGS else {"type": _JSON_KINDS[spec.kind]})
        if low is not None:
            kind["minimum"] = low
        if high is not None:
            kind["maximum"] = high
        properties[spec.name] = {**kind, "description": description}
    properties["grammar"] = {"type": "string", "description": "beyond Ollama: a GBNF grammar "
                             "the answer must follow"}
    return {"type": "object", "properties": properties,
            "description": "runtime options (Ollama's api.Options); unknown keys are ignored"}


# -- API options (Options.FromMap) --


def _json_int(key: str, value: Any) -> int:
    # Go decodes every JSON number to float64, then converts with int64(f): truncation toward
    # zero, and (on amd64) the minimum int64 for anything out of range.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOption(f'option "{key}" must be of type integer')
    try:
        number = float(value)
    except OverflowError:
        return _INT64_MIN
    if math.isnan(number) or not -(2.0**63) <= number < 2.0**63:
        return _INT64_MIN
    return int(number)


def _coerce(spec: OptionSpec, value: Any) -> Any:
    key = spec.name
    if spec.kind == INT:
        return _json_int(key, value)
    if spec.kind == BOOL:
        if not isinstance(value, bool):
            raise InvalidOption(f'option "{key}" must be of type boolean')
        return value
    if spec.kind == FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidOption(f'option "{key}" must be of type float32')
        try:
            return to_float32(float(value))
        except OverflowError:  # beyond float32: Go's SetFloat rounds to ±Inf
            return math.copysign(math.inf, value)
    if spec.kind == STRING:
        if not isinstance(value, str):
            raise InvalidOption(f'option "{key}" must be of type string')
        return value
    if not isinstance(value, list | tuple):
        raise InvalidOption(f'option "{key}" must be of type array')
    if not all(isinstance(item, str) for item in value):
        raise InvalidOption(f'option "{key}" must be of an array of strings')
    return list(value)


def from_map(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate an API `options` map: the typed values it sets (unknown keys and nulls dropped).

    Raises `InvalidOption` with Ollama's text for the first value of the wrong type.
    """
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        spec = OPTIONS.get(key)
        if spec is None:
            log.warning("invalid option provided option=%s", key)
            continue
        if value is None:
            continue
        out[key] = _coerce(spec, value)
    return out


def resolve(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Effective options: `DEFAULT_OPTIONS` ← each layer via `from_map` (later wins, OPT-21)."""
    out = dict(DEFAULT_OPTIONS)
    for layer in layers:
        out.update(from_map(layer))
    return out


def runner_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The load-time subset of `options`: what decides whether a loaded runner can be reused."""
    return {k: options.get(k, DEFAULT_OPTIONS[k]) for k in OPTIONS if k in RUNNER_OPTIONS}


# -- Modelfile / REPL parameters (FormatParams) --

_DEC = r"[0-9](?:_?[0-9])*"
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_GO_FLOAT = re.compile(
    rf"[+-]?(?:(?:{_DEC}(?:\.(?:{_DEC})?)?|\.{_DEC})(?:[eE][+-]?{_DEC})?"
    rf"|0[xX]_?(?:{_HEX}(?:\.(?:{_HEX})?)?|\.{_HEX})[pP][+-]?{_DEC})"
)
_GO_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
_GO_INT = re.compile(r"[+-]?[0-9]+")


def parse_go_float32(text: str) -> float | None:
    """Go's `strconv.ParseFloat(text, 32)` as a float32-rounded value; None where Go errors."""
    if _GO_SPECIAL.fullmatch(text):
        return float(text.lower().replace("infinity", "inf"))
    if not _GO_FLOAT.fullmatch(text):
        return None
    plain = text.replace("_", "")
    body = plain.lstrip("+-")
    value = float.fromhex(plain) if body[:2] in ("0x", "0X") else float(plain)
    try:
        return to_float32(value)
    except OverflowError:  # out of float32 range: Go's ErrRange
        return None


def parse_go_int(text: str) -> int | None:
    """Go's `strconv.ParseInt(text, 10, 64)`; None where Go errors (syntax or range)."""
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _go_list(values: Iterable[str]) -> str:
    return "[" + " ".join(values) + "]"  # Go's %s of a []string


def format_params(params: Mapping[str, list[str]]) -> dict[str, Any]:
    """Convert string values by option type (Ollama's `FormatParams`); `stop` keeps its list.

    Raises `ModelfileError` with Go's texts: `unknown parameter 'x'`, `invalid float value [x]`,
    `invalid int value [x]`, `invalid bool value [x]`.
    """
    out: dict[str, Any] = {}
    for key, values in params.items():
        spec = OPTIONS.get(key)
        if spec is None:
            raise ModelfileError(f"unknown parameter '{key}'")
        values = list(values)
        first = values[0] if values else ""
        if spec.kind == FLOAT:
            number = parse_go_float32(first)
            if number is None:
                raise ModelfileError(f"invalid float value {_go_list(values)}")
            out[key] = number
        elif spec.kind == INT:
            integer = parse_go_int(first)
            if integer is None:
                raise ModelfileError(f"invalid int value {_go_list(values)}")
            out[key] = integer
        elif spec.kind == BOOL:
            flag = go.parse_bool(first)
            if flag is None:
                raise ModelfileError(f"invalid bool value {_go_list(values)}")
            out[key] = flag
        elif spec.kind == STRING:
            out[key] = first
        else:
            out[key] = values
    return out
