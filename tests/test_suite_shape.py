"""The test suite's own shape: helpers come from `tests.support` only; no test module imports
another test module or conftest; nobody edits sys.path; nothing asserts on wall-clock time."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "dataops"
TIME_CALLS = {"time", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time_ns"}
OWN_FOLDERS = {"faults", "support", "golden"}  # tests/ folders that mirror no dataops subpackage


def _local_names() -> set[str]:
    """Top-level names a sibling-style import (`from conftest import ...`) would resolve in tests/.

    A folder named like an installed package (tests/airflow/ and Airflow) is left out: a bare
    `import airflow` is that package, never the folder, since tests/ is not on sys.path."""
    files = [p for p in TESTS.rglob("*.py") if "support" not in p.relative_to(TESTS).parts]
    folders = {p.name for p in TESTS.iterdir() if (p / "__init__.py").is_file()}
    installed = {n for n in folders if importlib.util.find_spec(n) is not None}
    return {p.stem for p in files} | folders - installed


def shape_violations(source: str, where: str, local: set[str]) -> list[str]:
    """One line per offence in the module `source` (named `where` in the messages)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level:
            modules = ["." * node.level + (node.module or "")]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        for mod in modules:
            parts = mod.split(".")
            if mod.startswith("."):
                found.append(f"{where}:{node.lineno}: relative import {mod!r}; use tests.support")
            elif parts[0] == "tests" and parts[1:2] != ["support"]:
                found.append(
                    f"{where}:{node.lineno}: imports {mod!r}; only tests.support is shared"
                )
            elif parts[0] in local and parts[0] != "tests":
                found.append(
                    f"{where}:{node.lineno}: imports {mod!r} by its bare name; "
                    "use `from tests.support.<module> import ...`"
                )
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "path"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "sys"
            and node.attr in {"insert", "append", "extend"}
        ):
            found.append(f"{where}:{node.lineno}: sys.path.{node.attr}; tests are a package")
    found += _timing_asserts(tree, where)
    return found


def _is_clock(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
        and node.func.attr in TIME_CALLS
    )


def _timing_asserts(tree: ast.AST, where: str) -> list[str]:
    """Asserts ordering (<, >, ...) a value read from the clock, directly or through variables."""
    clocked: set[str] = set()
    changed = True
    while changed:  # names assigned from the clock, or from names assigned from it
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value:
                if any(
                    _is_clock(n) or (isinstance(n, ast.Name) and n.id in clocked)
                    for n in ast.walk(node.value)
                ):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        for n in ast.walk(t):
                            if isinstance(n, ast.Name) and n.id not in clocked:
                                clocked.add(n.id)
                                changed = True
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in ast.walk(node.test):
            if isinstance(cmp, ast.Compare) and any(
                isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE) for op in cmp.ops
            ):
                if any(
                    _is_clock(n) or (isinstance(n, ast.Name) and n.id in clocked)
                    for n in ast.walk(cmp)
                ):
                    found.append(
                        f"{where}:{node.lineno}: asserts on wall-clock time (belongs in bench/)"
                    )
                    break
    return found


def test_no_test_module_imports_another_or_conftest_or_edits_sys_path():
    local = _local_names()
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS.parent)
        found += shape_violations(path.read_text(encoding="utf-8"), str(rel), local)
    assert found == [], "\n".join(found)


def test_every_shared_helper_lives_in_tests_support():
    helpers = sorted(
        str(p.relative_to(TESTS))
        for p in TESTS.rglob("*.py")
        if p.parent.name != "support"
        and p.name not in ("conftest.py", "__init__.py")
        and not p.name.startswith("test_")
    )
    assert helpers == [], f"helper modules outside tests/support: {helpers}"


def test_the_tests_follow_the_package_tree():
    """tests/<sub>/ mirrors dataops/<sub>/ (top-level modules and cross-cutting tests stay in
    tests/), and every folder is a package, so two test files may share a name."""
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    found = []
    for folder in sorted(
        p
        for p in TESTS.iterdir()
        if p.is_dir() and p.name != "__pycache__" and not p.name.startswith(".")
    ):
        if folder.name not in subpackages | OWN_FOLDERS:
            found.append(f"tests/{folder.name}/: no dataops/{folder.name}/ to mirror")
        if folder.name != "golden" and not (folder / "__init__.py").is_file():
            found.append(f"tests/{folder.name}/: no __init__.py")
    assert found == [], "\n".join(found)


def test_the_checker_finds_each_kind_of_offence():
    bad = """
import sys, time
from conftest import REPO
from tests.conftest import run_cli
from tests.test_ingest import make_sources
import airflow_helpers
from . import helpers
from tests.support.project import REPO
sys.path.insert(0, "..")

def test_fast():
    t0 = time.perf_counter()
    work()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    assert time.monotonic() - t0 <= 2
    assert len(x) < 3
"""
    found = shape_violations(bad, "m.py", {"conftest", "airflow_helpers", "test_ingest"})
    lines = sorted(int(f.split(":")[1]) for f in found)
    assert lines == [3, 4, 5, 6, 7, 9, 15, 16], found
