"""Model names as Ollama parses, validates and displays them (spec MOD-10 … MOD-13)."""

from __future__ import annotations

import pytest

from pollama.names import parse


@pytest.mark.parametrize(("text", "parts", "shortest"), [
    ("llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest"), "llama3.2:latest"),
    ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m"), "smollm2:135m"),
    ("me/m:1", ("registry.ollama.ai", "me", "m", "1"), "me/m:1"),
    ("localhost:5000/me/m:tag", ("localhost:5000", "me", "m", "tag"), "localhost:5000/me/m:tag"),
    ("example.com/ns/m", ("example.com", "ns", "m", "latest"), "example.com/ns/m:latest"),
    ("REGISTRY.OLLAMA.AI/library/X:Y", ("REGISTRY.OLLAMA.AI", "library", "X", "Y"), "X:Y"),
    ("http://127.0.0.1:5000/a/b:c", ("127.0.0.1:5000", "a", "b", "c"), "127.0.0.1:5000/a/b:c"),
    ("host/ns/m@sha256:abc", ("host", "ns", "m", "latest"), "host/ns/m:latest"),
])
def test_parse_and_display(text, parts, shortest):
    name = parse(text)
    assert name.parts() == parts
    assert name.is_valid
    assert name.display_shortest() == shortest


@pytest.mark.parametrize("text", [
    "", ":", "m:", "ns/", "/m", "../x", "a/../b", "..", ".hidden", "m:.tag", "ns.dot/m",
    "m" * 81, "ns/" + "n" * 81 + "/m", "m:" + "t" * 81, "h" * 351 + "/ns/m", "sp ace",
    "m:tag/with/slash/", "ünïcode", "a/b/c/d/e",
])
def test_invalid_names(text):
    assert not parse(text).is_valid


def test_limits_and_scheme():
    assert parse("m" * 80).is_valid
    assert parse("h" * 350 + "/ns/m").is_valid
    name = parse("http://localhost:5000/me/m")
    assert name.scheme == "http" and name.explicit_scheme
    assert parse("me/m").scheme == "https" and not parse("me/m").explicit_scheme
    assert parse("me/m").repository == "me/m"
    assert str(parse("a/b:c").manifest_relpath()) == "registry.ollama.ai/a/b/c"
    with pytest.raises(ValueError):
        parse("../x").manifest_relpath()


def test_equal_fold():
    assert parse("Me/Model:Tag").equal_fold(parse("me/model:tag"))
    assert not parse("me/model:tag").equal_fold(parse("me/model:other"))
