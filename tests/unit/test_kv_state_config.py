"""OLLAMA_KV_CACHE_DIR and OLLAMA_KV_CACHE_DIR_SIZE: where saved KV state goes, how much."""

from __future__ import annotations

from pathlib import Path

import pytest

from pollama.config import DEFAULT_KV_CACHE_SIZE, SERVE_ENV_DOCS, Config, parse_size


def test_defaults_next_to_the_database():
    config = Config.from_env({"HOME": "/h"})
    assert config.kv_cache_dir == Path("/h/.ollama/kv-cache")
    assert config.kv_cache_size == DEFAULT_KV_CACHE_SIZE == 4 << 30


@pytest.mark.parametrize("value", ["0", "off", "OFF", "false"])
def test_off(value):
    assert Config.from_env({"HOME": "/h", "OLLAMA_KV_CACHE_DIR": value}).kv_cache_dir is None


def test_moved():
    config = Config.from_env({"HOME": "/h", "OLLAMA_KV_CACHE_DIR": "/data/kv"})
    assert config.kv_cache_dir == Path("/data/kv")


@pytest.mark.parametrize(("raw", "size"), [
    ("4G", 4 << 30), ("512M", 512 << 20), ("100k", 100 << 10), ("1.5G", 3 << 29),
    ("4GB", 4 << 30), ("4GiB", 4 << 30), ("12345", 12345), ("0", 0),
])
def test_sizes(raw, size):
    assert parse_size(raw) == size
    env = {"HOME": "/h", "OLLAMA_KV_CACHE_DIR_SIZE": raw}
    assert Config.from_env(env).kv_cache_size == size


@pytest.mark.parametrize("raw", ["lots", "-1G", "G", "4X"])
def test_bad_size_keeps_the_default(raw):
    with pytest.raises(ValueError):
        parse_size(raw)
    env = {"HOME": "/h", "OLLAMA_KV_CACHE_DIR_SIZE": raw}
    assert Config.from_env(env).kv_cache_size == DEFAULT_KV_CACHE_SIZE


def test_listed_in_serve_help():
    assert "OLLAMA_KV_CACHE_DIR" in SERVE_ENV_DOCS and "OLLAMA_KV_CACHE_DIR_SIZE" in SERVE_ENV_DOCS
