"""NumPy (`.npy`, `.npz`) and HDF5 sources: arrays sliced along axis 0, higher ranks flattened
with their shape kept in the table's metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.errors import DatasetError
from dataops.stages.sources.base import Batch, RowErrors, Source
from dataops.stages.sources.rows import finish_batch, numbered


def _fixed_column(arr: np.ndarray) -> pa.Array:
    """A numpy column (rows on axis 0) as Arrow: scalars as is, higher ranks flattened."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind in "SUO":
        return pa.array(arr.tolist())
    if arr.ndim == 1:
        return pa.array(arr)
    width = int(np.prod(arr.shape[1:]))
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width)


def _shape_meta(arrays: dict[str, np.ndarray]) -> dict[str, list[int]]:
    return {k: list(v.shape[1:]) for k, v in arrays.items() if v.ndim > 1}


def read_arrays(src: Source, batch_rows: int, errors: RowErrors) -> Iterator[Batch]:
    fmt = src.params.format
    handle: Any = None
    try:
        if fmt == "npy":
            arrays = {src.name: np.load(src.path, mmap_mode="r", allow_pickle=False)}
        elif fmt == "npz":
            handle = np.load(src.path, allow_pickle=False)
            names = src.params.columns or list(handle.files)
            arrays = {
                n: handle[n]
                for n in dict.fromkeys(names + ([src.key] if src.key in handle.files else []))
            }
        else:
            import h5py

            handle = h5py.File(src.path, "r")
            names = src.params.columns or sorted(
                k for k, v in handle.items() if isinstance(v, h5py.Dataset)
            )
            if src.key in handle and src.key not in names:
                names.append(src.key)
            arrays = {n: handle[n] for n in names}
    except (ValueError, OSError) as err:
        raise DatasetError(f"{src.label}: not a readable {fmt} file: {err}") from None
    try:
        lengths = {n: a.shape[0] for n, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DatasetError(f"{src.label}: arrays have different lengths on axis 0: {lengths}")
        total = next(iter(lengths.values()))
        key_arr = arrays.pop(src.key, None) if src.keyless_prefix is None else None
        for s in range(0, total, batch_rows):
            e = min(total, s + batch_rows)
            cols = {n: _fixed_column(np.asarray(a[s:e])) for n, a in arrays.items()}
            rows = numbered("index ", np.arange(s, e))
            keys = (
                pa.array(np.asarray(key_arr[s:e]))
                if key_arr is not None
                else pa.array([str(i) for i in range(s, e)], pa.string())
            )
            if key_arr is not None and keys.type == pa.binary():
                keys = keys.cast(pa.string())
            table = pa.table(cols)
            meta = _shape_meta({n: a[:1] if hasattr(a, "shape") else a for n, a in arrays.items()})
            if meta:
                table = table.replace_schema_metadata(
                    {b"dataops.shapes": json.dumps(meta).encode()}
                )
            seqs = np.arange(s, e, dtype=np.int64)
            yield finish_batch(table, src, rows, seqs, errors, key_values=keys)
    finally:
        if handle is not None:
            handle.close()
