"""OLLAMA_* settings parsed as Ollama's envconfig does (spec section 2)."""

from __future__ import annotations

import math

import pytest

from pollama.config import Config, parse_host
from pollama.go import format_go_duration, parse_go_duration


@pytest.mark.parametrize(("raw", "scheme", "host", "port", "url"), [
    ("", "http", "127.0.0.1", 11434, "http://127.0.0.1:11434"),
    ("0.0.0.0", "http", "0.0.0.0", 11434, "http://127.0.0.1:11434"),
    (":8080", "http", "", 8080, "http://127.0.0.1:8080"),
    ("127.0.0.1:9000", "http", "127.0.0.1", 9000, "http://127.0.0.1:9000"),
    ("http://example.com", "http", "example.com", 80, "http://example.com:80"),
    ("https://example.com", "https", "example.com", 443, "https://example.com:443"),
    ("http://example.com:1234/path/", "http", "example.com", 1234,
     "http://example.com:1234/path"),
    ("[::1]", "http", "::1", 11434, "http://[::1]:11434"),
    ("[::1]:5000", "http", "::1", 5000, "http://[::1]:5000"),
    ("  \"localhost:7000\"  ", "http", "localhost", 7000, "http://localhost:7000"),
    ("example.com:99999", "http", "example.com", 11434, "http://example.com:11434"),
    ("ollama.com", "https", "ollama.com", 443, "https://ollama.com:443"),
])
def test_ollama_host_forms(raw, scheme, host, port, url):
    parsed = parse_host(raw)
    assert (parsed.scheme, parsed.host, parsed.port) == (scheme, host, port)
    assert parsed.url == url


@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25), ("-1m", -60), ("0", 0),
    ("2h45m30.5s", 9930.5), ("10us", 1e-5),
])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "error"), [
    ("300", 'time: missing unit in duration "300"'),
    ("5x", 'time: invalid duration "5x"'),
    ("", 'time: invalid duration ""'),
])
def test_go_duration_errors(text, error):
    with pytest.raises(ValueError) as err:
        parse_go_duration(text)
    assert str(err.value) == error


@pytest.mark.parametrize(("seconds", "text"), [
    (300, "5m0s"), (1.5, "1.5s"), (0.25, "250ms"), (3600, "1h0m0s"), (0, "0s"),
    (0.000001, "1µs"), (4000.5, "1h6m40.5s"),
])
def test_format_go_duration(seconds, text):
    assert format_go_duration(seconds) == text


def test_defaults_and_env_parsing(tmp_path):
    config = Config.from_env({"HOME": str(tmp_path)})
    assert config.models == tmp_path / ".ollama" / "models"
    assert config.keep_alive == 300 and config.max_queue == 512
    assert config.num_parallel == 0 and config.max_loaded_models == 0
    assert config.noprune is False and config.go_template is None
    env = {"HOME": str(tmp_path), "OLLAMA_KEEP_ALIVE": "-1", "OLLAMA_NOPRUNE": "yes",
           "OLLAMA_NUM_PARALLEL": "notanumber", "OLLAMA_MAX_QUEUE": "'7'",
           "OLLAMA_MODELS": "~/m", "OLLAMA_ORIGINS": "a.com, b.com",
           "OLLAMA_GO_TEMPLATE": "0", "OLLAMA_DEBUG": "2", "OLLAMA_NOHISTORY": "false"}
    config = Config.from_env(env)
    assert math.isinf(config.keep_alive)
    assert config.noprune is True  # an unparsable non-empty bool counts as true (Ollama)
    assert config.num_parallel == 0  # invalid integer → default
    assert config.max_queue == 7
    assert config.origins == ("a.com", "b.com")
    assert config.go_template is False and config.debug == 2 and config.nohistory is False
    assert Config.from_env({"HOME": str(tmp_path), "OLLAMA_KEEP_ALIVE": "600"}).keep_alive == 600


def test_origins_that_cannot_match_are_serve_errors(tmp_path):
    """gin-contrib/cors (Ollama) refuses to start on an origin without a scheme or with two
    wildcards; pollama says which entry and how to fix it."""
    def problems(origins: str) -> list[str]:
        return Config.from_env({"HOME": str(tmp_path), "OLLAMA_ORIGINS": origins}).serve_errors()

    assert problems("http://a.com, https://*.b.com,chrome-extension://id,moz-extension://*,*") \
        == []
    assert problems("a.com") == ["OLLAMA_ORIGINS entry 'a.com' is not an origin: give its "
                                 "scheme (e.g. http://a.com) or use a '*' wildcard"]
    assert problems("http://*.a.*") == ["OLLAMA_ORIGINS entry 'http://*.a.*' has more than one "
                                        "'*': only one is allowed"]
