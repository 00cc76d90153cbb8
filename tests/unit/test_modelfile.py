"""Modelfile parsing, create-request building and `ollama show` printing, against Ollama's cases.

Many tables are ported from Ollama's parser/parser_test.go so the two parsers agree line by line.
"""

from __future__ import annotations

import hashlib
import os
import pwd
from pathlib import Path

import pytest

from pollama.errors import ModelfileError
from pollama.formats.modelfile import (
    Command,
    Modelfile,
    build_create_request,
    expand_path,
    file_digest,
    files_for_model,
    format_modelfile,
    format_parameters,
    go_quote,
    go_value,
    parse,
    quote,
    request_file_names,
    valid_semver,
)

ERR_COMMAND = ('command must be one of "from", "license", "template", "system", "adapter", '
               '"draft", "renderer", "parser", "parameter", "message", or "requires"')
ERR_ROLE = 'message role must be one of "system", "user", or "assistant"'

LLAMA3_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}"
    "<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}"
    "<|eot_id|>"
)


def cmds(text: str | bytes) -> list[tuple[str, str]]:
    return [(c.name, c.args) for c in parse(text).commands]


# -- parsing --


def test_parse_file() -> None:
    text = (f"\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\n"
            f'PARAMETER param2 value2\nTEMPLATE """{LLAMA3_TEMPLATE}"""    \n')
    assert cmds(text) == [("model", "model1"), ("adapter", "adapter1"), ("license", "MIT"),
                          ("param1", "value1"), ("param2", "value2"),
                          ("template", LLAMA3_TEMPLATE)]


def test_parse_trim_space() -> None:
    text = ('\nFROM "     model 1"\nADAPTER      adapter3\nLICENSE "MIT       "\n'
            "PARAMETER param1        value1\nPARAMETER param2    value2\n"
            f'TEMPLATE """   {LLAMA3_TEMPLATE}   """    \n')
    assert cmds(text) == [("model", "     model 1"), ("adapter", "adapter3"),
                          ("license", "MIT       "), ("param1", "value1"), ("param2", "value2"),
                          ("template", f"   {LLAMA3_TEMPLATE}   ")]


@pytest.mark.parametrize(("text", "expected"), [
    ('FROM "FOO  BAR  "', [("model", "FOO  BAR  ")]),
    ('FROM "FOO BAR"\nPARAMETER param1 value1', [("model", "FOO BAR"), ("param1", "value1")]),
    ("FROM     FOOO BAR    ", [("model", "FOOO BAR")]),
    ("FROM /what/is/the path ", [("model", "/what/is/the path")]),
    ("FROM foo", [("model", "foo")]),
    ("FROM llama3:7b-instruct-q4_K_M", [("model", "llama3:7b-instruct-q4_K_M")]),
    ("PARAMETER param1 value1\nFROM foo", [("param1", "value1"), ("model", "foo")]),
    ("PARAMETER what the \nFROM lemons make lemonade ",
     [("what", "the"), ("model", "lemons make lemonade")]),
    ("from foo\nParameter Stop x\nsYsTeM hi", [("model", "foo"), ("Stop", "x"), ("system", "hi")]),
    ("\n# comment\nFROM foo\n\t", [("model", "foo")]),
    ("FROM foo # not a comment\n  # a comment\n", [("model", "foo # not a comment")]),
    ("FROM foo\nSYSTEM a # b\n#c\n", [("model", "foo"), ("system", "a # b")]),
    ("FROM foo\nDRAFT ./assistant\n", [("model", "foo"), ("draft", "./assistant")]),
    ("FROM foo\nRENDERER renderer1\nPARSER parser1\nREQUIRES 0.14.0",
     [("model", "foo"), ("renderer", "renderer1"), ("parser", "parser1"),
      ("requires", "0.14.0")]),
    ("FROM a\nFROM b\n", [("model", "a"), ("model", "b")]),
    ("FROM foo\r\nSYSTEM hi\r\n", [("model", "foo"), ("system", "hi")]),
    ("FROM foo\nSYSTEM \n", [("model", "foo"), ("system", "")]),
    ("FROM foo\nSYSTEM a\x00b\x07c\u200bd\n", [("model", "foo"), ("system", "abcd")]),
    ("\ufeffFROM foo", [("model", "foo")]),
    ("FROM test\n\tSYSTEM 你好👋", [("model", "test"), ("system", "你好👋")]),
    ("FROM foo\nPARAMETER  stop x\n", [("model", "foo"), ("", "stop x")]),
])
def test_parse_commands(text: str, expected: list[tuple[str, str]]) -> None:
    assert cmds(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('\nFROM foo\nSYSTEM """\nThis is a\nmultiline system.\n"""\n\t\t\t',
     "\nThis is a\nmultiline system.\n"),
    ('\nFROM foo\nSYSTEM """\nThis is a\nmultiline system."""\n', "\nThis is a\nmultiline system."),
    ('\nFROM foo\nSYSTEM """This is a\nmultiline system."""\n', "This is a\nmultiline system."),
    ('FROM foo\nSYSTEM """This is a multiline system."""\n', "This is a multiline system."),
    ('FROM foo\nSYSTEM """\nThis is a multiline system with "quotes".\n"""\n',
     '\nThis is a multiline system with "quotes".\n'),
    ('FROM foo\nSYSTEM """"""\n', ""),
    ('FROM foo\nSYSTEM ""\n', ""),
    ("FROM foo\nSYSTEM \"'\"\n", "'"),
    ('FROM foo\nSYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""\n',
     "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
    ('FROM foo\nSYSTEM "two\nlines"\n', "two\nlines"),
    ('FROM foo\nSYSTEM """a\r\nb"""\r\n', "a\r\nb"),
    ('FROM foo\nSYSTEM """ spaced  """   \n', " spaced  "),
    ('FROM foo\nSYSTEM "a" b"\n', 'a" b'),
])
def test_parse_quoted(text: str, expected: str) -> None:
    assert cmds(text)[-1] == ("system", expected)


def test_parse_template_quoted_at_eof() -> None:
    assert cmds('\nFROM foo\nTEMPLATE """\n{{ .Prompt }}\n"""') == [
        ("model", "foo"), ("template", "\n{{ .Prompt }}\n")]


@pytest.mark.parametrize(("text", "expected"), [
    ("\nFROM foo\nMESSAGE system You are a file parser. Always parse things.\n",
     [("message", "system: You are a file parser. Always parse things.")]),
    ("\nFROM foo\nMESSAGE system You are a file parser. Always parse things.",
     [("message", "system: You are a file parser. Always parse things.")]),
    ("FROM foo\nMESSAGE system A\nMESSAGE user Hey there!\nMESSAGE assistant Hello!\n",
     [("message", "system: A"), ("message", "user: Hey there!"),
      ("message", "assistant: Hello!")]),
    ('FROM foo\nMESSAGE system """\nYou are a multiline file parser.\n"""\n\t\t\t',
     [("message", "system: \nYou are a multiline file parser.\n")]),
])
def test_parse_messages(text: str, expected: list[tuple[str, str]]) -> None:
    assert cmds(text)[1:] == expected


@pytest.mark.parametrize(("key", "name", "value"), [
    ("numa true", "numa", "true"),
    ("num_ctx 1", "num_ctx", "1"),
    ("num_gqa 1", "num_gqa", "1"),
    ("use_mmap true", "use_mmap", "true"),
    ("top_p 1.0", "top_p", "1.0"),
    ("min_p 0.05", "min_p", "0.05"),
    ("penalize_newline true", "penalize_newline", "true"),
    ("stop ### User:", "stop", "### User:"),
    ("stop ### User: ", "stop", "### User:"),
    ('stop "### User:"', "stop", "### User:"),
    ('stop "### User: "', "stop", "### User: "),
    ('stop """### User:"""', "stop", "### User:"),
    ('stop """### User:\n"""', "stop", "### User:\n"),
    ("stop <|endoftext|>", "stop", "<|endoftext|>"),
    ("stop </s>", "stop", "</s>"),
])
def test_parse_parameters(key: str, name: str, value: str) -> None:
    assert cmds(f"FROM foo\nPARAMETER {key}\n") == [("model", "foo"), (name, value)]


@pytest.mark.parametrize(("text", "message"), [
    ("", "no FROM line"),
    ("PARAMETER param1 value1", "no FROM line"),
    ("# only a comment\n", "no FROM line"),
    ("\nFROM foo\nBADCOMMAND param1 value1\n", f"(line 3): {ERR_COMMAND}"),
    ("FROM foo\nFOO bar\n", f"(line 2): {ERR_COMMAND}"),
    ("FROM foo\r\nFOO bar\r\n", f"(line 3): {ERR_COMMAND}"),  # CR and LF both count
    ("FROM foo\nSYSTEM\n", f"(line 3): {ERR_COMMAND}"),  # the newline already counted
    ("FROM foo\nFROM2 x\n", f"(line 2): {ERR_COMMAND}"),
    ("FROM foo\n'SYSTEM' x\n", f"(line 2): {ERR_COMMAND}"),
    ("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n", f"(line 3): {ERR_ROLE}"),
    ("FROM foo\nMESSAGE User hi\n", f"(line 2): {ERR_ROLE}"),
    ("\nFROM foo\nPARAMETER param1\n", "unexpected EOF: param1"),
    ("FROM foo\nPARAMETER stop-x y\n", "unexpected EOF: stop"),
    ("\nFROM foo\nMESSAGE system\n", "unexpected EOF: system"),
    ("\nFROM foo\nMESSAGE system", "unexpected EOF"),
    ("FROM foo\nPARAMETER", "unexpected EOF"),
    ("FROM", "unexpected EOF"),
    ('\nFROM foo\nSYSTEM """This is a multiline system.""\n\t\t\t', "unexpected EOF"),
    ('\nFROM foo\nSYSTEM "\n\t\t\t', "unexpected EOF"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as err:
        parse(text)
    assert str(err.value) == message
    assert err.value.status == 400


UTF_DATA = "FROM bob\nPARAMETER param1 1\nPARAMETER param2 4096\nSYSTEM You are a utf16 file.\n"
UTF_EXPECTED = [("model", "bob"), ("param1", "1"), ("param2", "4096"),
                ("system", "You are a utf16 file.")]


@pytest.mark.parametrize("data", [
    b"\xff\xfe" + UTF_DATA.encode("utf-16-le"),
    b"\xfe\xff" + UTF_DATA.encode("utf-16-be"),
    b"\xef\xbb\xbf" + UTF_DATA.encode(),
    UTF_DATA.encode(),
])
def test_parse_encodings(data: bytes) -> None:
    assert cmds(data) == UTF_EXPECTED


def test_parse_invalid_utf8_is_replaced() -> None:
    assert cmds(b"FROM foo\nSYSTEM a\xffb\n")[-1] == ("system", "a\ufffdb")


# -- printing commands --


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"),
    ("", ""),
    ("two\nlines", '"two\nlines"'),
    (" lead", '" lead"'),
    ("trail ", '"trail "'),
    ('say "hi"\nnow', '"""say "hi"\nnow"""'),
    ('"quoted"', '""""quoted""""'),  # beyond Ollama: a leading quote would open a quote
    ("\ttab", '"\ttab"'),  # beyond Ollama: the parser strips an edge tab, so it is quoted
    ("cr\rhere", '"cr\rhere"'),  # and a carriage return ends a line
])
def test_quote(value: str, expected: str) -> None:
    assert quote(value) == expected


@pytest.mark.parametrize(("command", "expected"), [
    (Command("model", "/path with space/x"), "FROM /path with space/x"),
    (Command("adapter", "a b"), "ADAPTER a b"),
    (Command("template", "{{ .Prompt }}\n"), 'TEMPLATE "{{ .Prompt }}\n"'),
    (Command("requires", "0.14.0"), "REQUIRES 0.14.0"),
    (Command("draft", "./d"), "DRAFT ./d"),
    (Command("message", "user: Hello there!"), "MESSAGE user Hello there!"),
    (Command("message", "system: \nmulti\n"), 'MESSAGE system "\nmulti\n"'),
    (Command("stop", "<|im_end|>"), "PARAMETER stop <|im_end|>"),
    (Command("stop", "### User: "), 'PARAMETER stop "### User: "'),
])
def test_command_str(command: Command, expected: str) -> None:
    assert str(command) == expected


ROUND_TRIP = [
    ("\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\n"
     "PARAMETER param2 value2\nTEMPLATE template1\n"
     "MESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\n"
     "MESSAGE assistant Hello, I want to parse all the things!\n"),
    ('\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nTEMPLATE template1\nMESSAGE system """\n'
     'You are a store greeter. Always respond with "Hello!".\n"""\nMESSAGE user Hey there!\n'),
    ('\nFROM foo\nADAPTER adapter1\nLICENSE """\nVery long and boring legal text.\n'
     'Blah blah blah.\n"Oh look, a quote!"\n"""\n\nPARAMETER param1 value1\n'
     "PARAMETER param2 value2\nTEMPLATE template1\n"),
    '\nFROM foo\nSYSTEM ""\n',
    f'FROM foo\nTEMPLATE """{LLAMA3_TEMPLATE}"""\nPARAMETER stop "### User: "\nDRAFT ./d\n',
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_string_round_trip(text: str) -> None:
    first = parse(text)
    assert parse(str(first)) == first


# -- create request --


def write(path: Path, data: bytes = b"GGUF\x03\x00\x00\x00" + bytes(504)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_create_request_from_model_name(tmp_path: Path) -> None:
    mf = parse("FROM llama3.2\nTEMPLATE some template\nLICENSE single license\n"
               "PARAMETER temperature 0.5\nPARAMETER top_k 1\nSYSTEM You are a bot.\n"
               "LICENSE license2\nMESSAGE user Hello there!\nMESSAGE assistant Hi! How are you?\n"
               "REQUIRES v0.14.0\nRENDERER qwen3-coder\nPARSER qwen3-coder\n")
    draft = build_create_request(mf, tmp_path)
    assert draft.from_ == "llama3.2"
    assert draft.files == {} and draft.adapters == {}
    body = draft.to_request({})
    assert body == {
        "from": "llama3.2",
        "template": "some template",
        "license": ["single license", "license2"],
        "system": "You are a bot.",
        "parameters": {"temperature": 0.5, "top_k": 1},
        "messages": [{"role": "user", "content": "Hello there!"},
                     {"role": "assistant", "content": "Hi! How are you?"}],
        "renderer": "qwen3-coder",
        "parser": "qwen3-coder",
        "requires": "0.14.0",
    }
    assert list(body) == ["from", "template", "license", "system", "parameters", "messages",
                          "renderer", "parser", "requires"]  # api.CreateRequest field order


def test_create_request_minimal(tmp_path: Path) -> None:
    draft = build_create_request(parse("FROM test\nSYSTEM \"\"\n"), tmp_path)
    assert draft.to_request({}) == {"from": "test"}


def test_create_request_parameters(tmp_path: Path) -> None:
    mf = parse("FROM m\nPARAMETER stop <|im_end|>\nPARAMETER temperature 0.7\n"
               "PARAMETER stop </s>\nPARAMETER use_mmap false\nPARAMETER mirostat 2\n"
               "PARAMETER temperature 0.2\nPARAMETER penalize_newline true\n")
    draft = build_create_request(mf, tmp_path)
    assert draft.parameters == {"stop": ["<|im_end|>", "</s>"], "temperature": 0.2,
                                "use_mmap": False}
    assert draft.warnings == ["parameter mirostat is deprecated",
                              "parameter penalize_newline is deprecated"]


@pytest.mark.parametrize(("text", "message"), [
    ("FROM m\nPARAMETER numa true\n", "unknown parameter 'numa'"),
    ("FROM m\nPARAMETER num_ctx big\n", "invalid int value [big]"),
    ("FROM m\nPARAMETER top_p x\n", "invalid float value [x]"),
    ("FROM m\nPARAMETER use_mmap maybe\n", "invalid bool value [maybe]"),
    ("FROM m\nREQUIRES latest\n", "requires must be a valid semver (e.g. 0.14.0)"),
    ("FROM m\nREQUIRES 1.02.0\n", "requires must be a valid semver (e.g. 0.14.0)"),
    ("FROM m\nADAPTER ./missing.gguf\n", "stat {dir}/missing.gguf: no such file or directory"),
    ("FROM m\nDRAFT ./missing\n", "stat {dir}/missing: no such file or directory"),
    ("FROM ~nosuchuser_pollama/x\n",
     "failed to find user 'nosuchuser_pollama': user: unknown user nosuchuser_pollama"),
])
def test_create_request_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as err:
        build_create_request(parse(text), tmp_path)
    assert str(err.value) == message.format(dir=tmp_path)


@pytest.mark.parametrize(("version", "stored"), [
    ("0.14.0", "0.14.0"), ("v0.14.0", "0.14.0"), ("1", "1"), ("v1.2", "1.2"),
    ("1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5"), ("1.2.3-0a", "1.2.3-0a"),
])
def test_requires_valid(tmp_path: Path, version: str, stored: str) -> None:
    draft = build_create_request(parse(f"FROM m\nREQUIRES {version}\n"), tmp_path)
    assert draft.requires == stored


@pytest.mark.parametrize(("version", "valid"), [
    ("v1.2.3", True), ("v0.0.0", True), ("v1", True), ("v1.2", True),
    ("v1.2.3-alpha.1", True), ("v1.2.3+meta", True), ("v1.2.3-01", False), ("v01.2.3", False),
    ("v1.2-rc", False), ("1.2.3", False), ("v1.2.3-", False), ("v1.2.3-a..b", False),
    ("v1.2.3+", False), ("vv1", False), ("v1.2.3.4", False), ("v1.2.3\n", False),
])
def test_valid_semver(version: str, valid: bool) -> None:
    assert valid_semver(version) is valid


def test_create_request_file_paths(tmp_path: Path) -> None:
    model = write(tmp_path / "weights" / "model.gguf")
    adapter = write(tmp_path / "lora.gguf")
    mf = parse("FROM ./weights/model.gguf\nADAPTER lora.gguf\n")
    draft = build_create_request(mf, tmp_path)
    assert draft.from_ is None
    assert draft.files == {"model.gguf": model}
    assert draft.adapters == {"lora.gguf": adapter}
    digests = {p: file_digest(p) for p in draft.local_paths()}
    body = draft.to_request(digests)
    expected = "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    assert body == {"files": {"model.gguf": expected},
                    "adapters": {"lora.gguf": file_digest(adapter)}}
    # Bare hex digests are accepted too.
    bare = {p: d.removeprefix("sha256:") for p, d in digests.items()}
    assert draft.to_request(bare) == body


def test_create_request_absolute_and_multiple_froms(tmp_path: Path) -> None:
    one = write(tmp_path / "a" / "one.gguf")
    two = write(tmp_path / "b" / "c" / "two.gguf")
    draft = build_create_request(parse(f"FROM {one}\nFROM {two}\nFROM base\n"), "/elsewhere")
    assert draft.files == {"a/one.gguf": one, "b/c/two.gguf": two}  # relative to common root
    assert draft.from_ == "base"


def test_create_request_home_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = write(tmp_path / "m.gguf")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert build_create_request(parse("FROM ~/m.gguf\n"), "/nowhere").files == {"m.gguf": model}
    assert expand_path("~", "/x") == tmp_path
    me = pwd.getpwuid(os.getuid())
    assert expand_path(f"~{me.pw_name}/a/../b", "/x") == Path(me.pw_dir) / "b"
    assert expand_path(f"~{me.pw_name}", "/x") == Path(me.pw_dir)


@pytest.mark.parametrize(("arg", "expected"), [
    ("/abs/./x/../y", "/abs/y"),
    ("rel/x", "/base/dir/rel/x"),
    ("../up", "/base/up"),
    ("", "/base/dir"),
])
def test_expand_path(arg: str, expected: str) -> None:
    assert expand_path(arg, "/base/dir") == Path(expected)


def test_create_request_directory(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    gguf = write(model_dir / "model.gguf")
    config = write(model_dir / "config.json", b'{"a": 1}')
    nested = write(model_dir / "sub" / "x.json", b"{}")
    draft = build_create_request(parse("FROM ./model\n"), tmp_path)
    assert draft.files == {"config.json": config, "model.gguf": gguf, "sub/x.json": nested}


def test_create_request_directory_single_file(tmp_path: Path) -> None:
    gguf = write(tmp_path / "model" / "model.gguf")
    assert build_create_request(parse("FROM model\n"), tmp_path).files == {"model.gguf": gguf}


def test_create_request_directory_without_model(tmp_path: Path) -> None:
    write(tmp_path / "model" / "README.md", b"hello")
    with pytest.raises(ModelfileError, match=r"^no Modelfile or safetensors files found$"):
        build_create_request(parse("FROM ./model\n"), tmp_path)


@pytest.mark.parametrize(("target", "message"), [
    ("outside.json", "insecure path: ../outside.json"),
    (".cache/blob.json", "insecure path: ../.cache/blob.json\n\nUse --local-dir <dir> when "
                         "downloading model to disable caching"),
])
def test_create_request_insecure_symlink(tmp_path: Path, target: str, message: str) -> None:
    model_dir = tmp_path / "model"
    write(model_dir / "model.gguf")
    outside = write(tmp_path / target, b"{}")
    (model_dir / "config.json").symlink_to(outside)
    with pytest.raises(ModelfileError) as err:
        build_create_request(parse("FROM ./model\n"), tmp_path)
    assert str(err.value) == message


def test_create_request_symlink_inside_is_resolved(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    real = write(model_dir / "blobs" / "abc")
    (model_dir / "model.gguf").symlink_to(real)
    draft = build_create_request(parse("FROM ./model\n"), tmp_path)
    assert draft.files == {"abc": real}


def test_create_request_draft(tmp_path: Path) -> None:
    draft_file = write(tmp_path / "draft.gguf")
    draft = build_create_request(parse("FROM base\nDRAFT ./draft.gguf\n"), tmp_path)
    assert draft.draft_files == {"draft.gguf": draft_file}
    assert draft.to_request({draft_file: "sha256:" + "0" * 64}) == {
        "from": "base", "draft_files": {"draft.gguf": "sha256:" + "0" * 64}}


@pytest.mark.parametrize("text", ["FROM ./model.gguf\nDRAFT ./model.gguf\n",
                                  "DRAFT ./model.gguf\nFROM ./model.gguf\n",
                                  "FROM .\nDRAFT .\n"])
def test_create_request_draft_rejects_same_path(tmp_path: Path, text: str) -> None:
    write(tmp_path / "model.gguf")
    with pytest.raises(ModelfileError, match="DRAFT must not reference the same local path as "
                                             "FROM: "):
        build_create_request(parse(text), tmp_path)


def test_to_request_needs_every_digest(tmp_path: Path) -> None:
    write(tmp_path / "m.gguf")
    draft = build_create_request(parse("FROM m.gguf\n"), tmp_path)
    with pytest.raises(ValueError, match="no digest for"):
        draft.to_request({})


@pytest.mark.parametrize(("paths", "expected"), [
    (["/a/b/model.gguf"], ["model.gguf"]),
    (["/a/b/model.gguf", "/a/b/config.json"], ["config.json", "model.gguf"]),
    (["/a/b/model.gguf", "/a/c/d/x.json"], ["b/model.gguf", "c/d/x.json"]),
    (["/m/model.safetensors", "/m/2_Dense/config.json"], ["2_Dense/config.json",
                                                          "model.safetensors"]),
])
def test_request_file_names(paths: list[str], expected: list[str]) -> None:
    names = request_file_names([Path(p) for p in paths])
    assert list(names) == expected


BINARY = bytes(i % 256 for i in range(512))
ZIP = b"PK\x03\x04"
TEXT = b"test content"


@pytest.mark.parametrize(("files", "expected"), [
    ({"model-00001-of-00002.safetensors": TEXT, "model-00002-of-00002.safetensors": TEXT,
      "config.json": TEXT, "tokenizer.json": TEXT, "chat_template.jinja": TEXT},
     ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "config.json",
      "tokenizer.json", "chat_template.jinja"]),
    ({"model-00001-of-00001.safetensors": TEXT, "config.json": TEXT, "tokenizer.json": TEXT,
      "tokenizer.model": BINARY},
     ["model-00001-of-00001.safetensors", "config.json", "tokenizer.json", "tokenizer.model"]),
    ({"model.safetensors": TEXT, "config.json": TEXT, "modules.json": TEXT,
      "2_Dense/config.json": TEXT, "2_Dense/model.safetensors": TEXT,
      "3_Dense/config.json": TEXT, "3_Dense/model.safetensors": TEXT},
     ["model.safetensors", "2_Dense/model.safetensors", "3_Dense/model.safetensors",
      "config.json", "modules.json", "2_Dense/config.json", "3_Dense/config.json"]),
    ({"model-00001-of-00001.safetensors": TEXT, "consolidated.safetensors": TEXT,
      "config.json": TEXT}, ["model-00001-of-00001.safetensors", "config.json"]),
    ({"consolidated.safetensors": TEXT, "config.json": TEXT},
     ["consolidated.safetensors", "config.json"]),
    ({"pytorch_model-00001-of-00002.bin": ZIP, "pytorch_model-00002-of-00002.bin": ZIP,
      "config.json": b'{"config": true}'},
     ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "config.json"]),
    ({"consolidated.00.pth": ZIP, "consolidated.01.pth": ZIP, "config.json": b"{}"},
     ["consolidated.00.pth", "consolidated.01.pth", "config.json"]),
    ({"model.gguf": BINARY, "config.json": b"{}"}, ["model.gguf", "config.json"]),
    ({"model.bin": BINARY, "config.json": b"{}"}, ["model.bin", "config.json"]),
    ({".hidden.gguf": BINARY}, [".hidden.gguf"]),  # Go's glob matches dotfiles
    ({"lfs.gguf": b"version https://git-lfs.github.com/spec/v1\n", "real.bin": BINARY},
     ["real.bin"]),  # a text .gguf (git-lfs pointer) is skipped
    ({"model.gguf": BINARY, "sub/tokenizer.model": TEXT}, ["model.gguf", "sub/tokenizer.model"]),
    ({"model.gguf": BINARY, "sub/tokenizer.model": BINARY}, ["model.gguf"]),  # Go wants text
])
def test_files_for_model(tmp_path: Path, files: dict[str, bytes], expected: list[str]) -> None:
    for name, data in files.items():
        write(tmp_path / name, data)
    found = [os.path.relpath(f, tmp_path) for f in files_for_model(tmp_path)]
    assert found == expected


@pytest.mark.parametrize("files", [
    {"README.md": b"content", "config.json": b"content"},
    {"pytorch_model.bin": b"plain text content", "config.json": b"plain text content"},
])
def test_files_for_model_none(tmp_path: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        write(tmp_path / name, data)
    with pytest.raises(ModelfileError, match=r"^no Modelfile or safetensors files found$"):
        files_for_model(tmp_path)


def test_files_for_model_binary_json(tmp_path: Path) -> None:
    write(tmp_path / "model.gguf", BINARY)
    bad = write(tmp_path / "config.json", BINARY)
    with pytest.raises(ModelfileError) as err:
        files_for_model(tmp_path)
    assert str(err.value) == f"invalid content type: expected application/octet-stream for {bad}"


# -- ollama show --


def test_format_modelfile() -> None:
    text = format_modelfile(
        "smollm2:latest", "/models/blobs/sha256-aaa",
        adapters=["/models/blobs/sha256-bbb"],
        projectors=["/models/blobs/sha256-ccc"],
        template="{{ .Prompt }}",
        system="You are\nhelpful",
        parameters={"temperature": 0.7, "stop": ["<|im_start|>", "<|im_end|>"], "num_ctx": 4096,
                    "num_predict": 1000000, "use_mmap": False},
        licenses=["MIT", "Second\nlicense"],
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " yo "}],
    )
    assert text == (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM smollm2:latest\n"
        "\n"
        "FROM /models/blobs/sha256-aaa\n"
        "ADAPTER /models/blobs/sha256-bbb\n"
        "FROM /models/blobs/sha256-ccc\n"
        "TEMPLATE {{ .Prompt }}\n"
        'SYSTEM "You are\nhelpful"\n'
        "PARAMETER num_ctx 4096\n"
        "PARAMETER num_predict 1e+06\n"
        "PARAMETER stop <|im_start|>\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER temperature 0.7\n"
        "PARAMETER use_mmap false\n"
        "LICENSE MIT\n"
        'LICENSE "Second\nlicense"\n'
        "MESSAGE user Hi\n"
        'MESSAGE assistant " yo "\n'
    )
    body = text.split("\n\n", 1)[1]
    parsed = parse(body)
    assert str(parsed) == body  # what show prints parses back to the same commands
    assert parsed.commands[0] == Command("model", "/models/blobs/sha256-aaa")
    assert Command("message", "assistant:  yo ") in parsed.commands


def test_format_modelfile_minimal() -> None:
    text = format_modelfile("m:latest", "/b/sha256-x", template=None,
                            renderer="qwen3-coder", parser="qwen3-coder", draft="/b/sha256-d")
    assert text.endswith("\n\nFROM /b/sha256-x\nDRAFT /b/sha256-d\nRENDERER qwen3-coder\n"
                         "PARSER qwen3-coder\n")


def test_format_parameters() -> None:
    assert format_parameters({
        "temperature": 0.7, "stop": ["<|im_start|>", 'say "hi"\n'], "num_ctx": 131072,
        "use_mmap": True, "top_k": 1e21, "min_p": 0.00001,
    }) == (
        "min_p                          1e-05\n"
        "num_ctx                        131072\n"
        'stop                           "<|im_start|>"\n'
        'stop                           "say \\"hi\\"\\n"\n'
        "temperature                    0.7\n"
        "top_k                          1e+21\n"
        "use_mmap                       true"
    )
    assert format_parameters({}) == ""
    assert format_parameters({"a_very_long_parameter_name_over_30": 1}) == \
        "a_very_long_parameter_name_over_30 1"


@pytest.mark.parametrize(("value", "plain", "sharp"), [
    (4096, "4096", "4096"),
    (1.0, "1", "1"),
    (0.9, "0.9", "0.9"),
    (1000000, "1e+06", "1e+06"),
    (123456, "123456", "123456"),
    (1234567.5, "1.2345675e+06", "1.2345675e+06"),
    (0.0001, "0.0001", "0.0001"),
    (0.00001234, "1.234e-05", "1.234e-05"),
    (-2.5, "-2.5", "-2.5"),
    (0, "0", "0"),
    (float("inf"), "+Inf", "+Inf"),
    (True, "true", "true"),
    (None, "<nil>", "<nil>"),
    ("a\tb", "a\tb", '"a\\tb"'),
    ("é\u0085\x7f", "é\u0085\x7f", '"é\\u0085\\x7f"'),
    (["a", 1], "[a 1]", '[]interface {}{"a", 1}'),
])
def test_go_value(value: object, plain: str, sharp: str) -> None:
    assert go_value(value) == plain
    assert go_value(value, sharp=True) == sharp


def test_go_quote_astral_and_controls() -> None:
    assert go_quote("👋\x00\u200b") == '"👋\\x00\\u200b"'


def test_modelfile_str() -> None:
    mf = Modelfile([Command("model", "x"), Command("system", "hi there")])
    assert str(mf) == "FROM x\nSYSTEM hi there\n"
