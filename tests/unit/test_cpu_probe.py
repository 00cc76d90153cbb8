"""The CPU probe that decides whether runners use llama.cpp's extra buffer types (AMX, repacks).

These run real child processes: one that dies of a fault signal, one that exits cleanly, one
that fails for another reason, and the real probe on this machine's CPU.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from pollama.engine.cpu_probe import (
    CACHE_FILE,
    RepackDecision,
    describe_exit,
    machine_key,
    run_probe,
)

PY = sys.executable
DIES_OF_SIGILL = [PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
DIES_OF_SIGSEGV = [PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
SUCCEEDS = [PY, "-c", "print('fine')"]
FAILS = [PY, "-c", "raise SystemExit(3)"]


def decide(setting: bool | None, home: Path, command: list[str]):
    return asyncio.run(RepackDecision(setting, home, command).verdict())


def test_describe_exit_names_signals_as_ollama_says_exit_status() -> None:
    assert describe_exit(-4) == "signal 4 (SIGILL, illegal instruction)"
    assert describe_exit(-11) == "signal 11 (SIGSEGV, segmentation fault)"
    assert describe_exit(-9) == "signal 9 (SIGKILL, killed)"
    assert describe_exit(2) == "exit status 2"


@pytest.mark.parametrize("command", [DIES_OF_SIGILL, DIES_OF_SIGSEGV])
def test_a_probe_killed_by_a_fault_means_off_and_is_remembered(tmp_path: Path,
                                                              command: list[str]) -> None:
    verdict = decide(None, tmp_path, command)
    assert verdict.repack is False
    assert "died of signal" in verdict.reason
    saved = json.loads((tmp_path / CACHE_FILE).read_text())
    assert saved[machine_key()]["repack"] is False
    # The next server on this machine reads the verdict instead of probing again: a probe
    # that would now succeed is not run.
    again = decide(None, tmp_path, SUCCEEDS)
    assert again.repack is False and again.reason.endswith("(cached)")


def test_a_clean_probe_means_on_and_is_remembered(tmp_path: Path) -> None:
    verdict = decide(None, tmp_path, SUCCEEDS)
    assert verdict.repack is True
    assert json.loads((tmp_path / CACHE_FILE).read_text())[machine_key()]["repack"] is True
    assert decide(None, tmp_path, DIES_OF_SIGILL).repack is True  # cached: not probed again


def test_a_probe_that_fails_otherwise_takes_the_safe_path_and_asks_again(tmp_path: Path) -> None:
    verdict = decide(None, tmp_path, FAILS)
    assert verdict.repack is False
    assert not (tmp_path / CACHE_FILE).exists()
    assert decide(None, tmp_path, SUCCEEDS).repack is True


@pytest.mark.parametrize("setting", [True, False])
def test_ollama_repack_skips_the_probe(tmp_path: Path, setting: bool) -> None:
    marker = tmp_path / "probed"
    verdict = decide(setting, tmp_path, [PY, "-c", f"open({str(marker)!r}, 'w')"])
    assert verdict.repack is setting
    assert verdict.reason == f"OLLAMA_REPACK={int(setting)}"
    assert not marker.exists()
    assert not (tmp_path / CACHE_FILE).exists()


def test_an_unreadable_cache_file_is_probed_again(tmp_path: Path) -> None:
    (tmp_path / CACHE_FILE).write_text("{not json")
    assert decide(None, tmp_path, SUCCEEDS).repack is True
    assert json.loads((tmp_path / CACHE_FILE).read_text())[machine_key()]["repack"] is True


def test_the_real_probe_on_this_cpu() -> None:
    """The real child (tiny Q4_0 model, extra buffer types on, a 16-token and a 1-token decode)
    gives a verdict on this machine; where it says off, it is because the child died of a fault
    signal, and a runner without extra buffer types works (the rest of the suite shows that)."""
    verdict = asyncio.run(run_probe())
    assert verdict is not None
    if not verdict.repack:
        assert "died of signal" in verdict.reason
    else:
        assert "decoded 16 + 1 tokens" in verdict.reason


def test_the_machine_key_is_stable_and_names_no_path() -> None:
    assert machine_key() == machine_key()
    assert len(machine_key()) == 32
