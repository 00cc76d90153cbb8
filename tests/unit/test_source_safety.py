"""The package's own source, read as Python syntax trees: nothing that turns data into code or
objects (pickle, marshal, shelve, eval, exec), no shell, and Jinja only through its sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pollama

SOURCE = Path(pollama.__file__).resolve().parent
FILES = sorted(SOURCE.rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "cloudpickle",
                  "joblib"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
# jinja2 names that render outside the sandbox; the sandbox module is the only way in.
UNSAFE_JINJA = {"Environment", "Template", "NativeEnvironment", "from_string"}


def findings(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{where}: import {alias.name}")
                if alias.name == "jinja2":
                    found.append(f"{where}: import jinja2 (use jinja2.sandbox)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where}: from {node.module} import ...")
            if node.module in ("jinja2", "jinja2.environment", "jinja2.nativetypes"):
                bad = [a.name for a in node.names if a.name in UNSAFE_JINJA]
                if bad:
                    found.append(f"{where}: from {node.module} import {', '.join(bad)}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                found.append(f"{where}: {func.id}(...)")
            if isinstance(func, ast.Attribute) and func.attr in ("system", "popen") and \
                    isinstance(func.value, ast.Name) and func.value.id == "os":
                found.append(f"{where}: os.{func.attr}(...)")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                                   and keyword.value.value is False):
                    found.append(f"{where}: shell=...")
            if isinstance(func, ast.Attribute) and func.attr == "load" and \
                    isinstance(func.value, ast.Name) and func.value.id == "yaml":
                found.append(f"{where}: yaml.load(...)")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_code_from_data(path: Path):
    assert findings(ast.parse(path.read_text(), str(path))) == []


def test_the_scan_finds_what_it_looks_for():
    bad = ("import pickle\nfrom marshal import loads\nimport jinja2\n"
           "from jinja2 import Environment\neval('1')\nexec('x=1')\n"
           "__import__('os')\nsubprocess.run('ls', shell=True)\nos.system('ls')\n")
    assert len(findings(ast.parse(bad))) == 9
    assert len(FILES) > 100  # the whole package was read


def test_jinja_is_only_reached_through_the_sandbox():
    users = [p for p in FILES if "jinja2" in p.read_text()]
    assert [p.relative_to(SOURCE).as_posix() for p in users] == ["template/jinja.py"]
    assert "from jinja2.sandbox import ImmutableSandboxedEnvironment" in (
        SOURCE / "template/jinja.py").read_text()
