"""The CORS origin rules and the Host-header parsing of server/origins.py (Ollama's rules)."""

from __future__ import annotations

import pytest

from pollama.server.origins import OriginRules, allowed_host, local_addresses, split_host


@pytest.mark.parametrize(("hostport", "host"), [
    ("localhost:11434", "localhost"), ("[::1]:80", "::1"), ("::1", "::1"), ("[::1]", "[::1]"),
    ("example.com", "example.com"), ("a:b:c", "a:b:c"), ("host:", "host"), ("", ""),
    ("[fe80::1%eth0]:1", "fe80::1%eth0"), ("[::1]:1:2", "[::1]:1:2"),
])
def test_split_host_is_gos_split_host_port(hostport, host):
    assert split_host(hostport) == host


def test_origin_rules_match_exactly_or_around_one_wildcard():
    rules = OriginRules(["http://App.Example.com", "https://*.trusted.example", "*-ext://x"])
    assert rules.allows("http://app.example.com")  # configured origins are lower-cased
    assert not rules.allows("http://app.example.com:8080")
    assert rules.allows("https://a.b.trusted.example")
    assert not rules.allows("https://trusted.example.evil")
    assert rules.allows("moz-ext://x") and rules.allows("http://localhost:1")
    assert not rules.allows("http://localhost.evil") and not rules.allows("null")
    assert not rules.allow_all and OriginRules(["*"]).allow_all


def test_local_addresses_include_loopback_and_an_interface_address_is_allowed():
    found = local_addresses()
    assert any(ip.is_loopback for ip in found)
    for ip in found:  # whatever this machine's interfaces hold passes the guard
        assert allowed_host(f"[{ip}]:1" if ip.version == 6 else f"{ip}:1"), ip
