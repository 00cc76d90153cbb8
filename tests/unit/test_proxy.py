"""Which proxy a request goes through: Go's ProxyFromEnvironment rules (pollama/proxy.py)."""

from __future__ import annotations

import pytest

from pollama.proxy import ProxyError, proxy_for

VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_no_variables_no_proxy() -> None:
    assert proxy_for("https://registry.ollama.ai/v2/") is None


def test_scheme_picks_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.corp:3128")
    monkeypatch.setenv("http_proxy", "proxy.corp:8080")  # no scheme: http
    assert proxy_for("https://hf.co/v2/x/y/manifests/latest") == \
        "http://user:p%40ss@proxy.corp:3128"
    assert proxy_for("http://10.1.2.3:5000/v2/") == "http://proxy.corp:8080"


def test_all_proxy_is_not_read_as_in_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    assert proxy_for("https://registry.ollama.ai/v2/") is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:11434/api/tags", "http://localhost:11434/",
                                 "http://[::1]:11434/", "http://127.9.9.9/",
                                 "http://app.localhost/"])
def test_loopback_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    assert proxy_for(url) is None


@pytest.mark.parametrize(("no_proxy", "url", "direct"), [
    ("*", "https://anything.example/", True),
    ("example.com", "https://example.com/", True),
    ("example.com", "https://registry.example.com/", True),
    ("example.com", "https://notexample.com/", False),
    (".example.com", "https://example.com/", False),
    (".example.com", "https://registry.example.com/", True),
    ("10.0.0.0/8", "http://10.20.30.40:5000/", True),
    ("10.0.0.0/8", "http://192.168.1.2:5000/", False),
    ("192.168.1.2", "http://192.168.1.2:5000/", True),
    ("registry.lan:5000", "http://registry.lan:5000/", True),
    ("registry.lan:5000", "http://registry.lan:6000/", False),
    (" other.org , registry.lan ", "http://registry.lan/", True),
])
def test_no_proxy(monkeypatch: pytest.MonkeyPatch, no_proxy: str, url: str,
                  direct: bool) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (proxy_for(url) is None) is direct


def test_socks_proxies_and_bad_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5h://127.0.0.1:1080")
    assert proxy_for("https://hf.co/") == "socks5h://127.0.0.1:1080"
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy.corp")
    with pytest.raises(ProxyError, match=r"^invalid proxy URL 'ftp://proxy\.corp'"):
        proxy_for("https://hf.co/")
