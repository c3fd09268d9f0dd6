"""Build a `data/preprocessed`-style folder from plain values, to serialize hand-made records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops.fsutil import write_json
from dataops.metadata import FeatureInfo


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
    write_json(
        directory / "state.json",
        {
            "features": [f.model_dump(mode="json") for f in features],
            "state": {},
            "splits": [{"name": n, "num_examples": len(r)} for n, r in splits.items()],
            "skipped": {},
            "inputs_fingerprint": "0" * 64,
            "inputs": {},
            "params": {"ingest": {}, "preprocess": {}},
        },
    )
    return directory
