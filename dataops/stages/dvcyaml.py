"""`dvc.yaml`, derived: each stage's deps are the modules it imports and the sources it reads.

A hand-kept deps list drifts from the code (a change to `config.py` once re-ran no stage) and
from `params.yaml` (a source outside the sample folder was not tracked at all). Here the code deps of a
stage are the import closure of the module holding its function — read from the sources with
`ast`, nothing is imported — and the data deps of `ingest` are the paths its sources name. The
params of a stage are the keys it reads that the params file sets: a section left out falls
back to the defaults in `config.py`, which is itself a code dep of every stage.

`dataops dvc-yaml` writes the file; a test fails when the committed one differs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dataops.naming import DATASET_DIR, PREPROCESSED_DIR, REPORT_FILE, SAMPLE_DIR, SNAPSHOT_DIR

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# Every stage passes through the params model and the error types: the CLI (`dataops <stage>`)
# only parses flags and calls the stage function, so it is not a dep (a new read-only command
# must not re-run every stage).
COMMON_MODULES = ("dataops.config", "dataops.errors")
SAMPLE_OUT = SAMPLE_DIR


@dataclass(frozen=True)
class StageSpec:
    """What `dvc.yaml` says of one stage, minus the deps that are derived."""

    name: str
    desc: str
    module: str
    cmd: str
    params: tuple[str, ...]
    data_deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()
    """Outputs kept in git, not in the DVC cache (`cache: false`): small reports and plot data."""


SAMPLE = StageSpec(
    name="sample",
    desc="Generate the bundled sample source (PNG folders, a CSV, JSON Lines) in data/sample.",
    module="dataops.stages.sample",
    cmd=f"dataops sample --params params.yaml --out {SAMPLE_OUT}",
    params=("sample",),
    outs=(SAMPLE_OUT,),
)
STAGES = (
    StageSpec(
        name="ingest",
        desc="Read and join the sources named in ingest.sources into a Parquet snapshot.",
        module="dataops.stages.ingest",
        cmd=f"dataops ingest --params params.yaml --out {SNAPSHOT_DIR}",
        params=("dataset.on_error", "ingest"),
        outs=(SNAPSHOT_DIR,),
    ),
    StageSpec(
        name="preprocess",
        desc="Split by key hash, fit statistics and vocabularies on train, transform every split.",
        module="dataops.stages.preprocess",
        cmd=f"dataops preprocess --params params.yaml --snapshot {SNAPSHOT_DIR} --out {PREPROCESSED_DIR}",
        params=("dataset.on_error", "preprocess"),
        data_deps=(SNAPSHOT_DIR,),
        outs=(PREPROCESSED_DIR,),
    ),
    StageSpec(
        name="serialize",
        desc="Write TFRecord shards of tf.train.Example, shard indexes and metadata.json.",
        module="dataops.stages.serialize",
        cmd=f"dataops serialize --params params.yaml --preprocessed {PREPROCESSED_DIR} --out {DATASET_DIR}",
        params=(
            "dataset.name",
            "dataset.description",
            "dataset.homepage",
            "dataset.citation",
            "dataset.license",
            "serialize",
        ),
        data_deps=(PREPROCESSED_DIR,),
        outs=(DATASET_DIR,),
    ),
    StageSpec(
        name="validate",
        desc="Re-read every shard with TensorFlow and check the expectations in validate.",
        module="dataops.stages.validate",
        cmd=f"dataops validate --params params.yaml --dataset {DATASET_DIR} --report {REPORT_FILE}",
        params=("validate",),
        data_deps=(DATASET_DIR,),
        # Plot data is a DVC-cached out (pushed and pulled like the dataset; `dvc plots diff`
        # between published versions reads it from the cache); the verdict and the numbers are
        # small and kept in git, where publish commits them.
        outs=("reports/plots",),
        metrics=("reports/metrics.json",),
        reports=(REPORT_FILE,),
    ),
)

DEFAULT_SPLITS = ("train", "validation", "test")


def plot_definitions(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The top-level `plots:` of `dvc.yaml`: each file of a folder is one plot (written by
    `dataops.stages.validate.write_views`); the histograms have one line per split of
    `preprocess.split.ratios`."""
    ratios = ((params.get("preprocess") or {}).get("split") or {}).get("ratios") or {}
    splits = list(ratios) or list(DEFAULT_SPLITS)
    return [
        {
            "reports/plots/class_balance": {
                "template": "bar_horizontal",
                "x": "count",
                "y": "class",
                "x_label": "examples",
                "y_label": "class",
            }
        },
        {
            "reports/plots/histograms": {
                "template": "simple",
                "x": "value",
                "y": splits,
                "x_label": "value (bin centre)",
                "y_label": "fraction of the split",
            }
        },
    ]


# --- the import graph ---------------------------------------------------------------------------


def module_path(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The file of a `dataops` module or package, or None when there is none."""
    rel = Path(*name.split("."))
    for p in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


def all_modules(root: Path = PACKAGE_ROOT) -> list[str]:
    """Every module of the `dataops` package, by dotted name."""
    out = []
    for p in sorted((root / "dataops").rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


@cache
def imports_of(module: str, root: Path = PACKAGE_ROOT) -> frozenset[str]:
    """The `dataops` modules `module` imports, at any depth of its code (a function-level import
    still runs when the stage does), each with the packages its import runs."""
    path = module_path(module, root)
    if path is None:
        raise ValueError(f"no module {module} under {root}")
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "dataops":
                continue
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if module_path(candidate, root) is not None:
                    found.add(candidate)
    found.discard(module)
    return frozenset(found)


def import_closure(roots: Iterable[str], root: Path = PACKAGE_ROOT) -> set[str]:
    """`roots` and every `dataops` module they import, transitively, with the packages that hold
    them (importing `dataops.stages.sample` runs `dataops/stages/__init__.py` first)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(imports_of(m, root))
            parent = m.rpartition(".")[0]
            if parent and module_path(parent, root) is not None:
                todo.append(parent)
    return seen


def code_deps(spec: StageSpec, root: Path = PACKAGE_ROOT) -> list[str]:
    """The source files a stage runs, as project-relative paths, sorted."""
    mods = import_closure([spec.module, *COMMON_MODULES], root)
    return sorted(
        p.relative_to(root).as_posix() for m in mods if (p := module_path(m, root)) is not None
    )


# --- the file -----------------------------------------------------------------------------------


def _has_key(params: dict[str, Any], dotted: str) -> bool:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def source_deps(params: dict[str, Any]) -> list[str]:
    """The paths ingest reads, from `ingest.sources` (a source with image columns reads files
    next to it: its folder is the dep). Paths stay as written, relative to the project."""
    out: list[str] = []
    for src in (params.get("ingest") or {}).get("sources") or []:
        path = PurePosixPath(str(src.get("path", "")))
        if src.get("image_columns"):
            path = path.parent
        text = path.as_posix()
        if text not in out and text not in ("", "."):
            out.append(text)
    return out


def _covers(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def render(
    params: dict[str, Any], *, with_sample: bool, root: Path = PACKAGE_ROOT, code: bool = True
) -> str:
    """The text of `dvc.yaml` for a params file (as a dict). `code=False` leaves the package's
    own modules out, for a project that uses an installed `dataops` rather than holding it."""
    stages: dict[str, Any] = {}
    specs = ((SAMPLE,) if with_sample else ()) + STAGES
    sources = source_deps(params)
    for spec in specs:
        data = list(spec.data_deps)
        if spec.name == "ingest":
            # Sources the sample writes are tracked through its output, which DVC links.
            data = [s for s in sources if not (with_sample and _covers(SAMPLE_OUT, s))]
            if with_sample:
                data.insert(0, SAMPLE_OUT)
        entry: dict[str, Any] = {"desc": spec.desc, "cmd": spec.cmd}
        entry["deps"] = data + (code_deps(spec, root) if code else [])
        keys = [k for k in spec.params if _has_key(params, k)]
        if keys:
            entry["params"] = keys
        if spec.outs or spec.reports:
            entry["outs"] = [*spec.outs, *({r: {"cache": False}} for r in spec.reports)]
        if spec.metrics:
            entry["metrics"] = [{m: {"cache": False}} for m in spec.metrics]
        stages[spec.name] = entry
    header = (
        "# Generated by `dataops dvc-yaml` from params.yaml and the package's imports: do not edit.\n"
        "# Each stage depends on every module it runs and every source it reads, and on the\n"
        "# params.yaml keys it reads that the file sets (absent ones take config.py's defaults).\n"
    )
    return header + yaml.safe_dump(
        {"stages": stages, "plots": plot_definitions(params)}, sort_keys=False, width=120
    )
