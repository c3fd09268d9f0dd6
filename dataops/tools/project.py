"""`dataops init`: a working `params.yaml` and `dvc.yaml` for a user's own sources.

Each source's format comes from its suffix (a folder is an image folder); its columns and their
types are read from the first rows, and each column gets the feature kind a user would most
likely pick: floats are standardized numbers, integers int64 numbers, the declared label and
low-cardinality strings categorical, other strings text, lists sequences, bytes images. The
result is a starting point to edit — every key is documented in the README — and it runs as is:
`dvc repro` builds the dataset from it. No sample stage: user data is never generated over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dataops import config
from dataops.errors import ConfigError

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".npy": "npy",
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}
_PROBE_ROWS = 1000
_MAX_CATEGORIES = 50


@dataclass(frozen=True)
class InitResult:
    params: Path
    dvc_yaml: Path
    features: list[dict[str, Any]]


def _format_of(path: Path, label: str) -> str:
    if path.is_dir():
        return "image_folder"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"{label}: cannot tell the format from the suffix {path.suffix!r}; "
            f"known: {', '.join(sorted(FORMATS))} or a folder of class folders of images"
        )
    return fmt


def _probe(path: Path, fmt: str) -> Any:
    """A pyarrow table of the first rows of a tabular source."""
    import pyarrow as pa

    if fmt == "csv":
        import pyarrow.csv as pcsv

        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=1 << 20),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
        )
        return pa.Table.from_batches([reader.read_next_batch()]).slice(0, _PROBE_ROWS)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        return pa.Table.from_batches([next(pf.iter_batches(batch_size=_PROBE_ROWS))])
    if fmt == "jsonl":
        rows = []
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
                if len(rows) >= _PROBE_ROWS:
                    break
        return pa.Table.from_pylist(rows)
    raise AssertionError(fmt)


def _feature_for(name: str, column: Any, label: str | None) -> dict[str, Any] | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if name == label:
        return {"name": name, "kind": "categorical", "unknown": "error"}
    if pa.types.is_floating(t):
        return {"name": name, "kind": "numeric", "impute": "mean", "standardize": True}
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        if column.null_count:
            return {"name": name, "kind": "numeric", "impute": "mean", "standardize": True}
        return {"name": name, "kind": "numeric", "dtype": "int64", "impute": "none"}
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        distinct = pc.count_distinct(column).as_py()
        if distinct <= _MAX_CATEGORIES and distinct * 2 <= max(len(column), 2):
            return {"name": name, "kind": "categorical", "unknown": "oov"}
        return {"name": name, "kind": "text", "tokenize": True, "max_vocab": 10000}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        value = t.value_type
        return {
            "name": name,
            "kind": "sequence",
            "dtype": "float32" if pa.types.is_floating(value) else "int64",
        }
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return {"name": name, "kind": "image", "channels": 3, "encoding": "png"}
    return None


def propose(
    sources: list[str], root: Path, key: str | None, label: str | None, name: str
) -> dict[str, Any]:
    """The params mapping `dataops init` writes for `sources` (paths relative to `root`)."""
    if not sources:
        raise ConfigError("init: name at least one source with --source PATH")
    entries: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    if key is not None:
        features.append({"name": key, "kind": "key"})
    seen: set[str] = {key} if key else set()
    for i, text in enumerate(sources):
        path = (root / text).resolve()
        label_text = f"--source {text}"
        if not path.exists():
            raise ConfigError(f"{label_text}: does not exist")
        try:
            rel = path.relative_to(root.resolve()).as_posix()
        except ValueError:
            raise ConfigError(
                f"{label_text}: is outside the project {root}; move or link it inside"
            ) from None
        fmt = _format_of(path, label_text)
        stem = Path(rel).stem.replace(".", "_") or f"source{i}"
        entry: dict[str, Any] = {"name": stem, "format": fmt, "path": rel}
        if fmt == "image_folder":
            features.append({"name": "image", "kind": "image", "channels": 3, "encoding": "png"})
            features.append({"name": "label", "kind": "categorical", "unknown": "error"})
            seen |= {"image", "label"}
        elif fmt in ("csv", "parquet", "jsonl"):
            table = _probe(path, fmt)
            for col in table.column_names:
                if col in seen:
                    continue
                proposal = _feature_for(col, table.column(col), label)
                if proposal is not None:
                    features.append(proposal)
                    seen.add(col)
        else:
            raise ConfigError(
                f"{label_text}: init proposes features for CSV, Parquet, JSON Lines and image "
                f"folders; for {fmt}, write the features by hand (see the README)"
            )
        entries.append(entry)
    label_feature = label or ("label" if "label" in seen else None)
    validate: dict[str, Any] = {
        "min_examples": {"train": 1, "validation": 1, "test": 1},
        "allow_nan": False,
    }
    if label_feature:
        validate["class_balance"] = {
            "feature": label_feature,
            "min_fraction": 0.0,
            "max_fraction": 1.0,
        }
    return {
        "dataset": {
            "name": name,
            "on_error": "fail",
            **{k: "" for k in ("description", "homepage", "citation", "license")},
        },
        "ingest": {"key": key, "sources": entries},
        "preprocess": {
            "split": {
                "seed": 0,
                "ratios": {"train": 0.8, "validation": 0.1, "test": 0.1},
            },
            "features": features,
        },
        # Every section is written out (defaults included): dvc.yaml lists a section as a
        # params dep only when the file has it, so a section added later would go unnoticed.
        "serialize": config.SerializeParams().model_dump(mode="json"),
        "validate": validate,
    }


# Never-committed files the stages leave in a project: the writers' lock files
# (`data/.<out>.incomplete-lock`, kept on purpose) and the volatile run reports.
GIT_IGNORED = ("*.incomplete-*", "/reports/runs/")


def _ignore(path: Path, patterns: tuple[str, ...]) -> None:
    """Append the `patterns` missing from the .gitignore at `path` (created if absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    have = set(text.splitlines())
    missing = [p for p in patterns if p not in have]
    if missing:
        sep = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + sep + "".join(f"{p}\n" for p in missing), encoding="utf-8")


def init_project(
    root: str | Path,
    sources: list[str],
    *,
    key: str | None = None,
    label: str | None = None,
    name: str = "dataset",
    force: bool = False,
) -> InitResult:
    """Write `params.yaml` and `dvc.yaml` under `root` for `sources`; check them by parsing."""
    from dataops.config import parse_params
    from dataops.stages.dvcyaml import render

    root = Path(root)
    params_path, dvc_path = root / "params.yaml", root / "dvc.yaml"
    for p in (params_path, dvc_path):
        if p.exists() and not force:
            raise ConfigError(f"{p}: exists; pass --force to overwrite it")
    data = propose(sources, root, key, label, name)
    parse_params(data, params_path)  # what we write must be valid
    text = (
        "# Written by `dataops init`; edit freely (every key is documented in the README),\n"
        "# then run `dataops dvc-yaml` if you change ingest.sources.\n"
    ) + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)
    params_path.write_text(text, encoding="utf-8")
    # A checkout of this project tracks its own code; elsewhere `dataops` is an installed package.
    own_code = (root / "dataops" / "__init__.py").is_file()
    dvc_path.write_text(render(data, with_sample=False, code=own_code), encoding="utf-8")
    _ignore(root / ".gitignore", GIT_IGNORED)
    return InitResult(
        params=params_path, dvc_yaml=dvc_path, features=data["preprocess"]["features"]
    )
