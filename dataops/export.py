"""Export a serialized dataset as a `tf.data` snapshot, Parquet files or one HDF5 file, with its metadata.

* `snapshot` — `OUT/<split>/` written by `tf.data.Dataset.save`, one element per example
  (images decoded to uint8, sequences as 1-D tensors, text as tf.string), plus
  `OUT/metadata.json` and `OUT/export.json`. `dataops.load(OUT, ...)` reads it back with
  the same options (splits, slicing, shuffling, resuming) as the TFRecord dataset.
* `parquet` — `OUT/<split>.parquet` with the stored values (images stay encoded, e.g. PNG;
  tensors as fixed-size lists; sequences as lists), plus `metadata.json` and `export.json`.
* `hdf5` — one file `OUT` with a group per split and a dataset per feature (images decoded
  to `[N, H, W, C]` uint8, text as UTF-8 strings, sequences as variable-length int64); the
  metadata JSON is the root attribute `metadata` and is also written to `OUT.metadata.json`.

Every export is atomic: a crash leaves no half-written output under `OUT`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dataops.errors import ConfigError, DatasetError
from dataops.fsutil import atomic_dir, dumps_json, write_json
from dataops.metadata import METADATA_FILE, DatasetMetadata, FeatureInfo, write_metadata

Format = Literal["snapshot", "parquet", "hdf5"]
FORMATS: tuple[str, ...] = ("snapshot", "parquet", "hdf5")
_BATCH = 2048


@dataclass(frozen=True)
class ExportResult:
    out: Path
    format: str
    num_examples: dict[str, int]


def run_export(
    directory: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str]
) -> ExportResult:
    """Export the dataset at `directory` (TFRecord shards + metadata.json) in format `fmt` to `out`."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {list(FORMATS)}")
    from dataops.loader import Loader

    directory = Path(directory)
    out = Path(out)
    # Validates the directory: metadata, every shard present with its recorded size and sha256.
    loaders = {
        s.name: Loader(directory, s.name, batch_size=_BATCH, verify="sha256")
        for s in _meta(directory).splits
    }
    meta = next(iter(loaders.values())).metadata if loaders else _meta(directory)
    if loaders and next(iter(loaders.values())).source.kind != "tfrecord":
        raise DatasetError(f"{directory}: already an export; export a TFRecord dataset directory")
    counts = {name: ld.num_examples for name, ld in loaders.items()}
    info = {
        "format": fmt,
        "dataset": meta.name,
        "fingerprint": meta.fingerprint,
        "num_examples": counts,
    }
    if fmt == "snapshot":
        with atomic_dir(out) as tmp:
            for name, ld in loaders.items():
                ld.dataset().unbatch().save(str(tmp / name))
            write_metadata(tmp, meta)
            write_json(tmp / "export.json", info)
    elif fmt == "parquet":
        with atomic_dir(out) as tmp:
            for s in meta.splits:
                _write_parquet(directory, meta, s.name, tmp / f"{s.name}.parquet")
            write_metadata(tmp, meta)
            write_json(tmp / "export.json", info)
    else:
        _write_hdf5(loaders, meta, out, info)
    return ExportResult(out=out, format=fmt, num_examples=counts)


def _meta(directory: Path) -> DatasetMetadata:
    from dataops.metadata import read_metadata

    return read_metadata(directory)


def _raw_batches(directory: Path, meta: DatasetMetadata, split: str) -> Any:
    """Parsed, undecoded batches of one split, in row order."""
    import tensorflow as tf

    from dataops.spec import compression_type, parse_spec

    files = [str(directory / sh.file) for sh in meta.split(split).shards]
    spec = parse_spec(meta)
    ds = tf.data.TFRecordDataset(files, compression_type=compression_type(meta)).batch(_BATCH)
    return ds.map(lambda raw: tf.io.parse_example(raw, spec)).prefetch(2)


def _arrow_column(f: FeatureInfo, value: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    if f.kind == "sequence":
        splits = value.row_splits.numpy().astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(splits), pa.array(value.flat_values.numpy()))
    arr = value.numpy()
    if f.wire == "bytes":
        items = arr.tolist()
        if f.kind == "text":
            return pa.array([b.decode("utf-8") for b in items], pa.string())
        return pa.array(items, pa.binary())
    if f.shape:
        width = int(np.prod([int(d or 0) for d in f.shape]))
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width)
    return pa.array(arr)


def _write_parquet(directory: Path, meta: DatasetMetadata, split: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for batch in _raw_batches(directory, meta, split):
            cols = {f.name: _arrow_column(f, batch[f.name]) for f in meta.features}
            table = pa.table(cols)
            if writer is None:
                schema = table.schema.with_metadata(
                    {
                        "dataops.features": json.dumps(
                            [f.model_dump(mode="json") for f in meta.features], sort_keys=True
                        )
                    }
                )
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table.cast(writer.schema))
        if writer is None:  # empty split: an empty file with the schema of the features
            cols = {f.name: pa.array([], _empty_type(f)) for f in meta.features}
            pq.write_table(pa.table(cols), path)
    finally:
        if writer is not None:
            writer.close()


def _empty_type(f: FeatureInfo) -> Any:
    import numpy as np
    import pyarrow as pa

    base = pa.float32() if f.dtype == "float32" else pa.int64()
    if f.kind == "text":
        return pa.string()
    if f.wire == "bytes":
        return pa.binary()
    if f.kind == "sequence":
        return pa.list_(base)
    if f.shape:
        return pa.list_(base, int(np.prod([int(d or 0) for d in f.shape])))
    return base


def _write_hdf5(
    loaders: dict[str, Any], meta: DatasetMetadata, out: Path, info: dict[str, Any]
) -> None:
    import h5py
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.incomplete-{secrets.token_hex(4)}")
    try:
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.attrs["metadata"] = dumps_json(meta.model_dump(mode="json"))
            h5.attrs["export"] = dumps_json(info)
            for name, ld in loaders.items():
                group = h5.create_group(name, track_order=True)
                n = ld.num_examples
                dsets: dict[str, Any] = {}
                for f in meta.features:
                    if f.kind == "sequence":
                        dt: Any = h5py.vlen_dtype(np.int64 if f.dtype == "int64" else np.float32)
                        shape: tuple[int, ...] = (n,)
                    elif f.kind == "text":
                        dt, shape = h5py.string_dtype("utf-8"), (n,)
                    elif f.wire == "bytes" and f.kind != "image":
                        dt, shape = h5py.vlen_dtype(np.uint8), (n,)
                    else:
                        dt = {"float32": np.float32, "int64": np.int64, "uint8": np.uint8}[f.dtype]
                        shape = (n, *[int(d or 0) for d in f.shape])
                    dsets[f.name] = group.create_dataset(f.name, shape=shape, dtype=dt)
                row = 0
                for batch in ld.dataset():
                    b = None
                    for f in meta.features:
                        v = batch[f.name]
                        if f.kind == "sequence":
                            vals = v.to_list()
                            b = len(vals)
                            col = np.empty(b, dtype=object)
                            col[:] = [
                                np.asarray(x, dtype=dsets[f.name].dtype.metadata["vlen"])
                                for x in vals
                            ]
                            dsets[f.name][row : row + b] = col
                            continue
                        arr = v.numpy()
                        b = len(arr)
                        if f.kind == "text":
                            dsets[f.name][row : row + b] = [x.decode("utf-8") for x in arr.tolist()]
                        elif f.wire == "bytes" and f.kind != "image":
                            col = np.empty(b, dtype=object)
                            col[:] = [np.frombuffer(x, np.uint8) for x in arr.tolist()]
                            dsets[f.name][row : row + b] = col
                        else:
                            dsets[f.name][row : row + b] = arr
                    row += b or 0
                if row != n:
                    raise DatasetError(
                        f"split '{name}': exported {row} examples, metadata.json says {n}"
                    )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    side = out.with_name(out.name + "." + METADATA_FILE)
    side.write_text(dumps_json(meta.model_dump(mode="json")), encoding="utf-8")
