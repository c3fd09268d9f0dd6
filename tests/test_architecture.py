"""The package's shape, checked: `dvc.yaml` deps follow the imports, no import cycles."""

from __future__ import annotations

import yaml

from dataops.stages import dvcyaml
from tests.support.project import REPO


def test_committed_dvc_yaml_is_the_derived_one():
    """Deps follow the code and params.yaml; run `dataops dvc-yaml` after changing either."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    want = dvcyaml.render(params, with_sample=True, root=REPO)
    have = (REPO / "dvc.yaml").read_text(encoding="utf-8")
    assert have == want, "dvc.yaml is stale: run `dataops dvc-yaml` and commit it"


def test_a_stage_depends_on_what_its_modules_import():
    """The derivation is real: it follows an import made inside a function, across modules."""
    ingest = dvcyaml.code_deps(dvcyaml.STAGES[0], REPO)
    assert "dataops/config/__init__.py" in ingest and "dataops/stages/sources/csv.py" in ingest
    assert "dataops/loader.py" not in ingest  # ingest never reads TFRecords
    validate = dvcyaml.code_deps(dvcyaml.STAGES[-1], REPO)
    assert "dataops/stages/verify.py" in validate


def test_every_source_path_is_an_ingest_dep():
    params = {
        "ingest": {
            "sources": [
                {"name": "a", "format": "csv", "path": "elsewhere/a.csv"},
                {"name": "b", "format": "csv", "path": "x/b.csv", "image_columns": ["img"]},
                {"name": "c", "format": "image_folder", "path": "data/sample/images"},
            ]
        }
    }
    with_sample = yaml.safe_load(dvcyaml.render(params, with_sample=True, root=REPO))
    deps = with_sample["stages"]["ingest"]["deps"]
    assert deps[:3] == ["data/sample", "elsewhere/a.csv", "x"]
    without = yaml.safe_load(dvcyaml.render(params, with_sample=False, root=REPO))
    assert "sample" not in without["stages"]
    assert without["stages"]["ingest"]["deps"][:3] == ["elsewhere/a.csv", "x", "data/sample/images"]
    # Sections the file leaves out are not params deps (DVC would refuse a missing key).
    assert "params" not in without["stages"]["serialize"]


def test_no_import_cycles():
    graph = {m: dvcyaml.imports_of(m, REPO) for m in dvcyaml.all_modules(REPO)}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if n == "dataops" or n.startswith(m + "."):
                continue  # a package re-exporting its own children
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles}"


MAX_LINES = 400
REASON = "Over 400 lines:"


def _size_reason(path) -> str | None:
    """The `Over 400 lines:` line of a module docstring's first paragraph, if there is one."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = doc.split("\n\n", 1)[0]
    return next((ln for ln in first.splitlines() if ln.strip().startswith(REASON)), None)


def _oversized(package) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        reason = _size_reason(path)
        if n > MAX_LINES and (reason is None or not reason.strip()[len(REASON) :].strip()):
            out.append(f"{path.relative_to(package.parent).as_posix()}: {n} lines")
    return out


def test_no_module_over_400_lines_without_a_reason():
    """Split a long module along its seams, or say at its top why it is one piece: a line
    starting `Over 400 lines:` in the first paragraph of its docstring."""
    assert _oversized(REPO / "dataops") == []


def test_the_size_guard_sees_a_long_module_and_its_reason(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "x = 1\n" * MAX_LINES
    (pkg / "short.py").write_text('"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1))
    (pkg / "long.py").write_text('"""Long."""\n' + body)
    (pkg / "empty_reason.py").write_text('"""Long.\nOver 400 lines:\n"""\n' + body)
    (pkg / "later.py").write_text(
        '"""Long.\n\nOver 400 lines: too late, not the first paragraph."""\n' + body
    )
    (pkg / "ok.py").write_text(
        '"""Long.\nOver 400 lines: one state machine, read top to bottom."""\n' + body
    )
    assert _oversized(pkg) == [
        "pkg/empty_reason.py: 403 lines",
        "pkg/later.py: 403 lines",
        "pkg/long.py: 401 lines",
    ]
