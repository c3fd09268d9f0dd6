"""Hand-made data on disk: one small source of every format, a `data/preprocessed`-style folder
from plain values, and the files of a published version."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from dataops.artifacts import PreprocessState, SplitCount, StateParams, ValidationReport
from dataops.metadata import DatasetMetadata, FeatureInfo, SplitInfo, write_metadata
from dataops.naming import DATASET_DIR, REPORT_FILE
from dataops.stages.preprocess import STATE_FILE

N = 12  # rows of every source `make_sources` writes


def png_bytes(value: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_sources(root: Path) -> dict:
    """One small source of every supported format, keyed 0..N-1 (npy keys are row indices)."""
    raw = root / "raw"
    (raw / "pics").mkdir(parents=True)
    (raw / "folder" / "cat").mkdir(parents=True)
    (raw / "folder" / "dog").mkdir(parents=True)
    rows = ["id,score,pic"]
    for i in range(N):
        (raw / "pics" / f"p{i}.png").write_bytes(png_bytes(i))
        rows.append(f"{i},{i * 1.5 if i != 3 else ''},pics/p{i}.png")
        (raw / "folder" / ("cat" if i % 2 else "dog") / f"{i}.png").write_bytes(png_bytes(100 + i))
    (raw / "table.csv").write_text("\n".join(rows) + "\n")
    pq.write_table(
        pa.table({"id": list(range(N)), "vec": [[float(i), i + 0.5, -i] for i in range(N)]}),
        raw / "table.parquet",
    )
    with open(raw / "lines.jsonl", "w", encoding="utf-8") as f:
        for i in reversed(range(N)):  # another order than the primary
            f.write(
                json.dumps(
                    {"id": i, "text": f"Héllo  Wörld {i}", "seq": list(range(i % 4))},
                    ensure_ascii=False,
                )
                + "\n"
            )
    np.save(raw / "arr.npy", np.arange(N * 4, dtype=np.float32).reshape(N, 2, 2))
    np.savez(raw / "arrs.npz", id=np.arange(N), counts=np.arange(N, dtype=np.int64) * 7)
    with h5py.File(raw / "data.h5", "w") as h:
        h["id"] = np.arange(N)
        h["h5val"] = np.linspace(0, 1, N)
    return {
        "key": "id",
        "sources": [
            {"name": "table", "format": "csv", "path": "raw/table.csv", "image_columns": ["pic"]},
            {"name": "pq", "format": "parquet", "path": "raw/table.parquet"},
            {"name": "lines", "format": "jsonl", "path": "raw/lines.jsonl"},
            {"name": "arr", "format": "npy", "path": "raw/arr.npy"},
            {"name": "arrs", "format": "npz", "path": "raw/arrs.npz"},
            {"name": "h5", "format": "hdf5", "path": "raw/data.h5"},
            {"name": "folder", "format": "image_folder", "path": "raw/folder"},
        ],
    }


def arrow_type(f: FeatureInfo) -> pa.DataType:
    if f.wire == "bytes":
        return pa.string() if f.kind == "text" else pa.binary()
    value = pa.float32() if f.dtype == "float32" else pa.int64()
    if f.kind == "sequence":
        return pa.list_(value)
    if not f.shape:
        return value
    return pa.list_(value, int(np.prod(f.shape)))


def write_preprocessed(
    directory: Path, features: list[FeatureInfo], splits: dict[str, list[dict[str, Any]]]
) -> Path:
    """Write `<split>.parquet` and `state.json` as preprocess would; values are plain Python."""
    directory.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(f.name, arrow_type(f)) for f in features])
    for name, rows in splits.items():
        cols = {}
        for f in features:
            vals = [r[f.name] for r in rows]
            if f.kind == "tensor":
                flat = [np.asarray(v).reshape(-1).tolist() for v in vals]
                vals = flat if f.shape else [v[0] for v in flat]
            cols[f.name] = pa.array(vals, arrow_type(f))
        pq.write_table(pa.table(cols, schema=schema), directory / f"{name}.parquet")
    PreprocessState(
        features=features,
        state={},
        splits=[SplitCount(name=n, num_examples=len(r)) for n, r in splits.items()],
        skipped={},
        inputs_fingerprint="0" * 64,
        inputs={},
        params=StateParams(ingest={}, preprocess={}),
    ).write(directory / STATE_FILE)
    return directory


def _meta(features: list[str], n: int) -> DatasetMetadata:
    return DatasetMetadata(
        name="toy",
        fingerprint=f"{n:064x}",
        features=[
            FeatureInfo(name=f, kind="tensor", dtype="int64", shape=[], encoding="none")
            for f in features
        ],
        splits=[SplitInfo(name="train", num_examples=n, num_bytes=10 * n, shards=[])],
        preprocessing={},
        inputs={},
    )


def write_version(ws: Path, n: int, features: list[str] = ["a"], ok: bool = True) -> None:  # noqa: B006
    """The files publish reads (metadata, validation report, params, dvc.lock) for `n` examples."""
    meta = _meta(features, n)
    write_metadata(ws / DATASET_DIR, meta)
    ValidationReport(
        ok=ok,
        dataset=meta.name,
        fingerprint=meta.fingerprint,
        num_examples={"train": n},
        num_bytes={"train": 10 * n},
        num_shards={"train": 0},
        skipped={},
        violations=[] if ok else ["split 'train': 3 examples < 10"],
        class_counts={},
    ).write(ws / REPORT_FILE)
    (ws / "params.yaml").write_text(f"sample:\n  num_examples: {n}\n")
    (ws / "dvc.lock").write_text(f"schema: '2.0'\nstages: {{}}\n# {n}\n")


def snapshot_parts(directory: Path) -> list[Path]:
    """The parts of the snapshot in `directory` (`snapshot-00000-of-0000N.parquet`, ...)."""
    from dataops.stages.snapshot_files import SnapshotFiles

    return [Path(p) for p in SnapshotFiles.local(directory).paths]


def read_snapshot(directory: Path) -> pa.Table:
    """Every row of the snapshot in `directory`, its parts in order."""
    return pa.concat_tables(pq.read_table(p) for p in snapshot_parts(directory))


def snapshot_bytes(directory: Path) -> dict[str, bytes]:
    """The bytes of each part of the snapshot in `directory`, by file name."""
    return {p.name: p.read_bytes() for p in snapshot_parts(directory)}


def folder_bytes(directory: Path) -> dict[str, bytes]:
    """Every file of `directory` (not its subfolders) by name: what two runs must write alike."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}
