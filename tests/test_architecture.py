"""The package's shape: import layers (import-linter contracts in .importlinter), no
loaders by module name, a frozen shared context, no module over ~400 lines without a
reason in its docstring."""

import ast
import dataclasses
import os
import re
import subprocess
import sys

import pytest

from rotordream.context import Context

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "rotordream")
LONG = 400


def modules():
    """(relative path, source) of every module of the package."""
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, ROOT), f.read()


def test_import_contracts_hold():
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    if not os.path.exists(exe):
        pytest.fail("lint-imports missing: pip install import-linter (requirements-test.txt)")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "broken" not in out.stdout.split("Contracts:")[-1].split("kept")[0]


def test_no_part_is_loaded_by_name():
    # Parts are built explicitly by the assembler: a missing module is an error at start,
    # never a silently missing feature.
    found = []
    for path, source in modules():
        for node in ast.walk(ast.parse(source)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "importlib" or n.startswith("importlib.") for n in names):
                found.append(path)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
                found.append(path)
    assert found == []


def test_long_modules_say_why():
    unexplained = []
    for path, source in modules():
        lines = source.count("\n")
        doc = ast.get_docstring(ast.parse(source)) or ""
        if lines > LONG and "why it is long:" not in doc.lower():
            unexplained.append("%s (%d lines)" % (path, lines))
    assert unexplained == [], ("modules over %d lines must say in their docstring why they "
                               "are long (a paragraph \"Why it is long: ...\")" % LONG)


def test_the_shared_context_is_never_written_after_assembly():
    # Parts get their collaborators in their constructors; the bundle the web tree and
    # ONVIF read is frozen, and nothing probes it for parts that may be missing.
    ctx = Context(config=None, reactor=None, state=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.events = object()
    probes = [path for path, source in modules()
              if re.search(r"getattr\(\s*(self\.)?ctx\b", source)]
    assert probes == []
