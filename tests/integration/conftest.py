"""Integration fixtures: one real server per test module, the SmolLM2 model created in it."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import Server, create_from_gguf
from tests.integration.registry_fixture import auth_registry, registry  # noqa: F401 - fixtures
from tests.templates import CHATML_TOOLS


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


@pytest.fixture(scope="module")
def tooly(server, smol):
    """`smol-tools`: SmolLM2 with tests.templates.CHATML_TOOLS, a template that offers tools."""
    server.client().create(model="smol-tools", from_=smol, template=CHATML_TOOLS,
                           parameters={"stop": ["<|im_end|>"]})
    return "smol-tools"


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MB tmpfs (mounted as root) for disk-full tests; skips where mounting is refused."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
