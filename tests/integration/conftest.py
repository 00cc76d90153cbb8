"""Integration fixtures: one real server per test module, the SmolLM2 model created in it."""

from __future__ import annotations

import pytest

from tests.helpers import Server, create_from_gguf
from tests.integration.registry_fixture import auth_registry, registry  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def server():
    srv = Server().start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def smol(server, smollm2_path):
    """`smollm2:135m` created from the bundled GGUF in this module's server."""
    create_from_gguf(server, "smollm2:135m", smollm2_path)
    return "smollm2:135m"
