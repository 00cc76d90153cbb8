"""Embedding vectors as Ollama shapes them (EMB-03), input types (EMB-01), the CLI's float32 text
(RUN-11)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pollama.cli.run import go_float32
from pollama.errors import BadRequest, EmbeddingError
from pollama.inference.embed import (
    finish,
    float32_values,
    is_input_limit_error,
    normalize,
    parse_input,
)


def test_normalize_is_l2_in_float32():
    out = normalize(np.array([3.0, 4.0]))
    assert out.dtype == np.float32 and out.tolist() == pytest.approx([0.6, 0.8])
    assert normalize(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]  # max(norm, 1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_is_refused(bad):
    with pytest.raises(EmbeddingError, match=r"^embedding contains NaN or Inf values$"):
        finish([1.0, bad, 2.0], None)


def test_dimensions_cut_then_renormalise():
    vec = [1.0, 2.0, 2.0, 10.0]
    assert finish(vec, 3).tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    whole = finish(vec, None)
    for dims in (0, -2, 4, 9):
        assert finish(vec, dims).tolist() == whole.tolist()


def test_float32_values_print_as_go_float32():
    vec = np.array([0.1, 1 / 3, -2.5e-5], dtype=np.float32)
    assert json.dumps(float32_values(vec)) == "[0.1, 0.33333334, -2.5e-05]"


def test_parse_input():
    assert parse_input("hi") == ["hi"]
    assert parse_input("") == parse_input([]) == parse_input(None) == []
    assert parse_input(["a", ""]) == ["a", ""]
    for bad in (1, 1.5, True, {"a": 1}, ["a", 1], [None]):
        with pytest.raises(BadRequest, match=r"^invalid input type$"):
            parse_input(bad)


def test_input_limit_errors():
    assert is_input_limit_error("the input length exceeds the context length")
    assert is_input_limit_error("input is too large to process. increase the physical batch "
                                "size")
    assert not is_input_limit_error("llama_decode failed while embedding (code -1)")


@pytest.mark.parametrize(("value", "text"), [
    (0.1, "0.1"), (1.0, "1"), (-0.0, "-0"), (1e-6, "0.000001"), (9.999e-7, "9.999e-7"),
    (1.5e-7, "1.5e-7"), (3e21, "3e+21"), (123456.7, "123456.7"), (-0.012757875, "-0.012757875"),
])
def test_go_float32(value, text):
    assert go_float32(value) == text
