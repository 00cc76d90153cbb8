"""API keys are compared in constant time: every configured key goes through
hmac.compare_digest, whichever matches and whether any does, so the time a wrong key takes
tells nothing about how much of it was right."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import pytest

from pollama.server import auth

KEYS = ("first-key-aaaa", "second-key-bbbb", "third-key-cccc")


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    return calls


@pytest.mark.parametrize(("given", "ok"), [
    ("first-key-aaaa", True), ("third-key-cccc", True), ("first-key-aaab", False),
    ("f", False), ("", False), ("x" * 10_000, False),
])
def test_every_key_is_compared_with_compare_digest(compared, given, ok):
    assert auth.key_matches(given, KEYS) is ok
    assert [b for _a, b in compared] == [k.encode() for k in KEYS]  # no early exit
    assert all(isinstance(a, bytes) and a == given.encode() for a, _b in compared)


def test_the_middleware_decides_through_key_matches(monkeypatch, compared):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = auth.APIKeyGuard(app, keys=KEYS)
    statuses = []
    for header in (b"Bearer third-key-cccc", b"Bearer third-key-cccd"):
        scope = {"type": "http", "method": "GET", "path": "/api/tags",
                 "headers": [(b"authorization", header)]}
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        asyncio.run(guard(scope, receive, send))
        statuses.append(sent[0]["status"])
    assert statuses == [200, 401]
    assert len(compared) == 2 * len(KEYS)
