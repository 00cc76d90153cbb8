"""Ollama's options: the table, FromMap (API options) and FormatParams (Modelfile strings)."""

from __future__ import annotations

import logging

import pytest

from pollama.errors import BadRequest, ModelfileError
from pollama.formats import options
from pollama.formats.options import InvalidOption, format_params, from_map


def test_table_matches_api_types() -> None:
    assert list(options.OPTIONS) == [
        "num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread",
        "draft_num_predict", "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p",
        "typical_p", "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty",
        "frequency_penalty", "stop",
    ]
    runner = {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread",
              "draft_num_predict"}
    assert runner == options.RUNNER_OPTIONS
    assert options.OPTION_TYPES["top_p"] == "float"
    assert options.OPTION_TYPES["stop"] == "[]string"
    assert options.OPTIONS["use_mmap"].nullable and options.OPTIONS["main_gpu"].nullable


def test_defaults_are_ollamas() -> None:
    assert dict(options.DEFAULT_OPTIONS) == {
        "num_ctx": 0, "num_batch": 512, "num_gpu": -1, "main_gpu": None, "use_mmap": None,
        "num_thread": 0, "draft_num_predict": 4, "num_keep": 4, "seed": -1, "num_predict": -1,
        "top_k": 40, "top_p": 0.9, "min_p": 0.0, "typical_p": 1.0, "repeat_last_n": 64,
        "temperature": 0.8, "repeat_penalty": 1.0, "presence_penalty": 0.0,
        "frequency_penalty": 0.0, "stop": None,
    }


@pytest.mark.parametrize(("given", "expected"), [
    ({"num_ctx": 2048}, {"num_ctx": 2048}),
    ({"num_ctx": 2048.9}, {"num_ctx": 2048}),  # JSON numbers are float64; int64() truncates
    ({"seed": -3.7}, {"seed": -3}),
    ({"num_predict": 1e30}, {"num_predict": -(2**63)}),  # amd64 overflow conversion
    ({"temperature": 1}, {"temperature": 1.0}),
    ({"temperature": 0.7}, {"temperature": 0.7}),
    ({"top_p": 0.123456789}, {"top_p": 0.12345679}),  # float32
    ({"use_mmap": False}, {"use_mmap": False}),
    ({"main_gpu": 1.0}, {"main_gpu": 1}),
    ({"stop": ["a", "b"]}, {"stop": ["a", "b"]}),
    ({"stop": []}, {"stop": []}),
    ({"top_k": None}, {}),  # null values are skipped
    ({}, {}),
])
def test_from_map_values(given: dict, expected: dict) -> None:
    assert from_map(given) == expected


@pytest.mark.parametrize(("given", "message"), [
    ({"top_k": "40"}, 'option "top_k" must be of type integer'),
    ({"num_ctx": True}, 'option "num_ctx" must be of type integer'),
    ({"main_gpu": "0"}, 'option "main_gpu" must be of type integer'),
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"temperature": False}, 'option "temperature" must be of type float32'),
    ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
    ({"stop": "</s>"}, 'option "stop" must be of type array'),
    ({"stop": ["a", 1]}, 'option "stop" must be of an array of strings'),
    ({"num_ctx": "big"}, 'option "num_ctx" must be of type integer'),
    ({"seed": [1]}, 'option "seed" must be of type integer'),
    ({"top_p": {"v": 1}}, 'option "top_p" must be of type float32'),
    ({"use_mmap": "true"}, 'option "use_mmap" must be of type boolean'),
    ({"stop": 5}, 'option "stop" must be of type array'),
    ({"stop": [None]}, 'option "stop" must be of an array of strings'),
])
def test_from_map_type_errors(given: dict, message: str) -> None:
    with pytest.raises(InvalidOption) as err:
        from_map(given)
    assert str(err.value) == message
    # GF-01: the client's fault, so a 400 (Ollama answers 500 from its default error branch).
    assert isinstance(err.value, BadRequest) and err.value.status == 400


@pytest.mark.parametrize("key", ["numa", "low_vram", "mirostat", "penalize_newline", "bogus"])
def test_from_map_unknown_and_legacy_keys_warn_and_drop(
        key: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pollama.formats.options"):
        assert from_map({key: 1, "top_k": 5}) == {"top_k": 5}
    assert "invalid option provided" in caplog.text and key in caplog.text


def test_resolve_precedence() -> None:
    resolved = options.resolve({"temperature": 0.2, "stop": ["x"]}, {"temperature": 0.5},
                               None)
    assert resolved["temperature"] == 0.5
    assert resolved["stop"] == ["x"]
    assert resolved["top_k"] == 40
    assert options.runner_options(resolved) == {
        "num_ctx": 0, "num_batch": 512, "num_gpu": -1, "main_gpu": None, "use_mmap": None,
        "num_thread": 0, "draft_num_predict": 4}


@pytest.mark.parametrize(("params", "expected"), [
    ({"temperature": ["0.7"]}, {"temperature": 0.7}),
    ({"temperature": ["1"]}, {"temperature": 1.0}),
    ({"top_p": ["1e-1"]}, {"top_p": 0.1}),
    ({"top_p": [".5"]}, {"top_p": 0.5}),
    ({"top_p": ["5."]}, {"top_p": 5.0}),
    ({"top_p": ["1_0.5"]}, {"top_p": 10.5}),  # Go syntax allows digit separators
    ({"top_p": ["0x1p-2"]}, {"top_p": 0.25}),
    ({"top_p": ["+Inf"]}, {"top_p": float("inf")}),
    ({"min_p": ["0.123456789"]}, {"min_p": 0.12345679}),
    ({"num_ctx": ["4096"]}, {"num_ctx": 4096}),
    ({"seed": ["-1"]}, {"seed": -1}),
    ({"seed": ["+7"]}, {"seed": 7}),
    ({"main_gpu": ["0"]}, {"main_gpu": 0}),
    ({"use_mmap": ["true"]}, {"use_mmap": True}),
    ({"use_mmap": ["F"]}, {"use_mmap": False}),
    ({"use_mmap": ["1"]}, {"use_mmap": True}),
    ({"stop": ["<|eot_id|>"]}, {"stop": ["<|eot_id|>"]}),
    ({"stop": ["a", "b"]}, {"stop": ["a", "b"]}),
])
def test_format_params_values(params: dict, expected: dict) -> None:
    assert format_params(params) == expected


@pytest.mark.parametrize(("params", "message"), [
    ({"numa": ["true"]}, "unknown parameter 'numa'"),
    ({"Temperature": ["1"]}, "unknown parameter 'Temperature'"),
    ({"temperature": ["hot"]}, "invalid float value [hot]"),
    ({"temperature": ["1e39"]}, "invalid float value [1e39]"),  # float32 range
    ({"temperature": [" 1"]}, "invalid float value [ 1]"),
    ({"temperature": ["0x1.8"]}, "invalid float value [0x1.8]"),  # hex needs a p exponent
    ({"temperature": ["1__0"]}, "invalid float value [1__0]"),
    ({"top_p": ["+nan"]}, "invalid float value [+nan]"),
    ({"num_ctx": ["abc"]}, "invalid int value [abc]"),
    ({"num_ctx": ["1.5"]}, "invalid int value [1.5]"),
    ({"num_ctx": ["1_000"]}, "invalid int value [1_000]"),
    ({"num_ctx": ["9223372036854775808"]}, "invalid int value [9223372036854775808]"),
    ({"num_ctx": ["x", "2"]}, "invalid int value [x 2]"),  # Go prints the whole []string
    ({"use_mmap": ["yes"]}, "invalid bool value [yes]"),
    ({"main_gpu": ["one"]}, "invalid int value [one]"),
])
def test_format_params_errors(params: dict, message: str) -> None:
    with pytest.raises(ModelfileError) as err:
        format_params(params)
    assert str(err.value) == message


@pytest.mark.parametrize(("value", "expected"), [
    (0.7, 0.7), (0.1, 0.1), (1e-5, 1e-05), (100000.0, 100000.0), (0.9, 0.9),
    (16777217.0, 16777216.0), (3.4e38, 3.4e38),
])
def test_to_float32(value: float, expected: float) -> None:
    assert options.to_float32(value) == expected


def test_deprecated_parameters() -> None:
    assert options.DEPRECATED_PARAMETERS == (
        "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
        "mirostat", "mirostat_tau", "mirostat_eta")
