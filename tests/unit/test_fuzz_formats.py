"""Property tests (hypothesis) of the parsers that read what users send: Modelfiles, model
names (and blob digests), Go templates, and images. Whatever the input, each answers or raises
its own error type (a 400 or the template's 500, never a crash), never hangs, and never names a
path outside the models folder. Regressions found by fuzzing are pinned with `@example`.

Example counts are modest so `make test` stays fast; `FUZZ_EXAMPLES=5000` (an environment
variable) runs each property that many times.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import string
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pollama.errors import ModelfileError, PollamaError
from pollama.formats.modelfile import Command, Modelfile, parse, quote
from pollama.inference.images import MAX_IMAGE_PIXELS, decode_base64, normalize, sniff
from pollama.names import parse as parse_name
from pollama.store.blobs import Blobs, parse_digest
from pollama.template.go import Template, TemplateError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))


def fuzz(examples: int = EXAMPLES, deadline: int | None = None) -> settings:
    return settings(max_examples=examples, deadline=deadline,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# -- Modelfiles --------------------------------------------------------------------------------

_WORDS = ["FROM", "from", "PARAMETER", "SYSTEM", "TEMPLATE", "MESSAGE", "LICENSE", "ADAPTER",
          "REQUIRES", "PARSER", "RENDERER", "DRAFT", "#", "nope"]
_VALUE_CHARS = list(' \t"\n\r#:{}\\\'ab\u00e9\u2028\x00\x7f\ufeff')
modelfile_lines = st.tuples(
    st.sampled_from(_WORDS), st.sampled_from([" ", "\t", "  ", ""]),
    st.sampled_from(["", "temperature ", "stop ", "user ", "assistant ", "system ", "robot "]),
    st.text(alphabet=st.sampled_from(_VALUE_CHARS), max_size=14)).map("".join)
modelfile_texts = st.lists(modelfile_lines, max_size=7).map(
    lambda lines: "FROM base\n" + "\n".join(lines))


@fuzz()
@given(st.binary(max_size=200) | st.text(max_size=200) | modelfile_texts)
@example(b"\xfe\xff\x00F\x00R")  # a UTF-16 BOM with an odd byte count
@example("FROM a\nMESSAGE user")
def test_any_modelfile_parses_or_is_a_modelfile_error(text: str | bytes) -> None:
    with contextlib.suppress(ModelfileError):
        parse(text)


@fuzz(EXAMPLES * 2)
@given(modelfile_texts)
@example('FROM base\nFROM " "')  # FROM was printed bare: the space was lost
@example('FROM base\nSYSTEM "\tindented"')  # an edge tab was printed bare and stripped
@example('FROM base\nLICENSE "a\rb"')  # a carriage return was printed bare and ended the line
@example('FROM base\nSYSTEM """"quoted" start"""')  # a leading quote opened a quote
def test_a_printed_modelfile_parses_back_to_the_same_commands(text: str) -> None:
    """What `show --modelfile` prints creates the same model: parse → print → parse."""
    try:
        first = parse(text)
    except ModelfileError:
        return
    printed = str(first)
    assert parse(printed).commands == first.commands, printed


@fuzz()
@given(st.lists(st.tuples(st.sampled_from(["system", "template", "license", "stop"]),
                          st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs", "Zl",
                                                                             "Zp"]),
                                  max_size=20)), max_size=5))
@example([("system", "0 \U000e0080")])  # the parser drops the last character: a trailing space
def test_printed_commands_parse_back(commands: list[tuple[str, str]]) -> None:
    """Any one-line value survives being printed and parsed (quoted where needed), less the
    characters that are not printable, which the parser drops (as Ollama's does)."""
    original = Modelfile([Command("model", "base"),
                          *(Command(name, value) for name, value in commands)])
    printable = [Command(c.name, "".join(ch for ch in c.args if ch.isprintable()))
                 for c in original.commands]
    assert parse(str(original)).commands == printable


def test_quote_leaves_plain_values_as_ollama_prints_them() -> None:
    assert quote("plain value") == "plain value"
    assert quote("two\nlines") == '"two\nlines"'


# -- names and digests -------------------------------------------------------------------------

_NAME_CHARS = string.ascii_letters + string.digits + "_.-:/@" + "\\ \x00..é"
names = st.text(alphabet=st.sampled_from(list(_NAME_CHARS)), max_size=40) | st.text(max_size=40)
valid_parts = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
valid_names = st.tuples(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}(:[0-9]{1,5})?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,15}", fullmatch=True), valid_parts, valid_parts)


@fuzz(EXAMPLES * 2)
@given(names)
@example("../../etc/passwd")
@example("/abs/olute:tag")
@example("a/../b")
@example("host/ns/..:..")
@example("..")
@example("h/n/m:t@sha256:" + "0" * 64)
def test_a_name_never_names_a_path_outside_the_models_folder(text: str) -> None:
    name = parse_name(text)  # never raises
    if not name.is_valid:
        with pytest.raises(ValueError):
            name.manifest_relpath()
        return
    parts = name.manifest_relpath().parts
    assert len(parts) == 4
    for part in parts:
        assert part not in ("", ".", "..")
        assert "/" not in part and "\\" not in part and "\x00" not in part
    root = Path("/models/manifests")
    assert root.joinpath(*parts).resolve().is_relative_to(root)


@fuzz()
@given(valid_names)
def test_a_valid_name_displays_and_parses_back(parts: tuple[str, str, str, str]) -> None:
    host, namespace, model, tag = parts
    name = parse_name(f"{host}/{namespace}/{model}:{tag}")
    assert name.is_valid and name.parts() == parts
    assert parse_name(name.display_long()).parts() == parts
    assert parse_name(name.display_shortest()).equal_fold(name)
    assert parse_name(str(name)).equal_fold(name)


@fuzz()
@given(st.text(max_size=80) | st.just("sha256:" + "a" * 64) | st.just("sha256-" + "F" * 64))
@example("sha256:../../../../etc/passwd")
@example("sha256-" + "0" * 63 + "/")
def test_a_digest_is_a_blob_file_in_the_blobs_folder_or_refused(text: str) -> None:
    blobs = Blobs(Path("/models/blobs"))
    if parse_digest(text) is None:
        with pytest.raises(PollamaError):
            blobs.path(text)
        return
    path = blobs.path(text)
    assert path.parent == Path("/models/blobs") and path.name.startswith("sha256-")
    assert len(path.name) == len("sha256-") + 64


# -- Go templates ------------------------------------------------------------------------------

_PIECES = ["{{", "}}", "{{-", "-}}", " ", ".", ".Messages", ".Prompt", ".System", ".Tools",
           "$", "$x", ":=", "=", "|", "(", ")", '"s"', "`r`", "'c'", "1", "-2", "3.5", "1e3",
           "0x1F", "nil", "true", "if", "else", "end", "range", "with", "define", "template",
           "block", "break", "continue", "len", "index", "slice", "printf", "print", "json",
           "eq", "ne", "lt", "and", "or", "not", "call", "html", "js", "urlquery",
           "currentDate", "toTypeScriptType", "%d", "%v", "%s", "%*d", ",", "/*", "*/",
           "\n", "x", "\\", '"']
templates = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
template_data = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["Messages", "Prompt", "System", "Tools", "Role", "Content", "x"]),
        inner, max_size=4),
    max_leaves=15)

BOUNDED = [
    "{{range 1000000000}}x{{end}}",  # was: hours of work for one request
    "{{range 100000}}{{range 100000}}{{end}}{{end}}",
    '{{range 10000}}{{printf "%999999d" 1}}{{end}}',  # was: gigabytes of prompt
    '{{define "a"}}{{template "a" .}}{{end}}{{template "a" .}}',
]


@fuzz(deadline=5000)  # a deadline: every template ends, error or not, in seconds
@given(templates, template_data)
@example(BOUNDED[0], None)
@example(BOUNDED[1], None)
@example(BOUNDED[2], None)
@example(BOUNDED[3], {})
@example('{{range $i, $v := .}}{{end}}', 5)
@example("{{slice .Prompt 1 0}}", {"Prompt": "ab"})
def test_any_template_renders_or_raises_its_own_error(text: str, data: object) -> None:
    try:
        template = Template.parse(text)
    except TemplateError:
        return
    try:
        first = template.execute(data)
    except TemplateError:
        return
    assert template.execute(data) == first  # deterministic


# -- images ------------------------------------------------------------------------------------


def _images() -> dict[str, bytes]:
    from PIL import Image

    picture = Image.new("RGB", (9, 7), (200, 30, 30))
    picture.putpixel((3, 3), (0, 255, 0))
    out = {}
    for fmt in ("PNG", "JPEG", "GIF", "WEBP"):
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt)
        out[fmt] = buffer.getvalue()
    return out


IMAGES = _images()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header, with one tiny compressed row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _normalized_or_refused(data: bytes) -> None:
    try:
        out = normalize(data)
    except ValueError:
        return
    assert sniff(out) in ("PNG", "JPEG")


@fuzz()
@given(st.sampled_from(sorted(IMAGES)), st.data())
def test_truncated_and_corrupted_images_are_refused_or_read(fmt: str, data: st.DataObject
                                                            ) -> None:
    image = bytearray(IMAGES[fmt])
    cut = data.draw(st.integers(0, len(image)), label="cut")
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(image) - 1), st.integers(0, 255)),
                               max_size=4), label="flips")
    for at, value in flips:
        image[at] = value
    _normalized_or_refused(bytes(image[:cut]))


@fuzz()
@given(st.binary(max_size=300))
@example(_png_header(100_000, 100_000))  # a decompression bomb's header
@example(_png_header(0, 5))
@example(b"GIF89a" + b"\xff" * 20)
@example(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
@example(b"\xff\xd8\xff")
def test_arbitrary_bytes_are_refused_or_read(data: bytes) -> None:
    _normalized_or_refused(data)


@fuzz()
@given(st.text(alphabet=string.ascii_letters + string.digits + "+/=\r\n -_:;,", max_size=80)
       | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()))
@example("data:image/png;base64,AAAA")
def test_any_base64_text_is_decoded_or_refused(text: str) -> None:
    try:
        raw = decode_base64(text)
    except ValueError:
        return
    _normalized_or_refused(raw)


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(ValueError, match="too large"):
        normalize(_png_header(100_000, 100_000))
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    with pytest.raises(ValueError, match="too large"):
        normalize(_png_header(side, side))
    for fmt, data in IMAGES.items():  # the real ones are read
        assert sniff(normalize(data)) in ("PNG", "JPEG"), fmt
