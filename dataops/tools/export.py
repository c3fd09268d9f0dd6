"""Export a serialized dataset as a `tf.data` snapshot, Parquet files or one HDF5 file, with its metadata.

* `snapshot` — `OUT/<split>/` written by `tf.data.Dataset.save`, one element per example
  (images decoded to uint8 or uint16, sequences as 1-D tensors, text as tf.string), plus
  `OUT/metadata.json` and `OUT/export.json`. `dataops.load(OUT, ...)` reads it back with
  the same options (splits, slicing, shuffling, resuming) as the TFRecord dataset.
* `parquet` — `OUT/<split>.parquet` with the stored values (images stay encoded, e.g. PNG;
  tensors as fixed-size lists; sequences as lists), plus `metadata.json` and `export.json`.
* `hdf5` — one file `OUT` with a group per split and a dataset per feature (images decoded
  to `[N, H, W, C]` uint8 or uint16, text as UTF-8 strings, sequences as variable-length int64); the
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

from dataops.artifacts import ExportInfo
from dataops.errors import ConfigError, DatasetError
from dataops.features.stored import stored_feature
from dataops.fsutil import atomic_dir, dumps_json
from dataops.metadata import METADATA_FILE, DatasetMetadata, write_metadata
from dataops.naming import EXPORT_FILE

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
    info = ExportInfo(
        format=fmt,  # type: ignore[arg-type]  # checked against FORMATS above
        dataset=meta.name,
        fingerprint=meta.fingerprint,
        num_examples=counts,
    )
    if fmt == "snapshot":
        with atomic_dir(out) as tmp:
            for name, ld in loaders.items():
                ld.dataset().unbatch().save(str(tmp / name))
            write_metadata(tmp, meta)
            info.write(tmp / EXPORT_FILE)
    elif fmt == "parquet":
        with atomic_dir(out) as tmp:
            for s in meta.splits:
                _write_parquet(directory, meta, s.name, tmp / f"{s.name}.parquet")
            write_metadata(tmp, meta)
            info.write(tmp / EXPORT_FILE)
    else:
        _write_hdf5(loaders, meta, out, info)
    return ExportResult(out=out, format=fmt, num_examples=counts)


def _meta(directory: Path) -> DatasetMetadata:
    from dataops.metadata import read_metadata

    return read_metadata(directory)


def _raw_batches(directory: Path, meta: DatasetMetadata, split: str) -> Any:
    """Parsed, undecoded batches of one split, in row order."""
    import tensorflow as tf

    from dataops.tfrecord.spec import compression_type, parse_spec

    files = [str(directory / sh.file) for sh in meta.split(split).shards]
    spec = parse_spec(meta)
    ds = tf.data.TFRecordDataset(files, compression_type=compression_type(meta)).batch(_BATCH)
    return ds.map(lambda raw: tf.io.parse_example(raw, spec)).prefetch(2)


def _write_parquet(directory: Path, meta: DatasetMetadata, split: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for batch in _raw_batches(directory, meta, split):
            cols = {f.name: stored_feature(f).arrow_column(batch[f.name]) for f in meta.features}
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
            cols = {f.name: pa.array([], stored_feature(f).arrow_type()) for f in meta.features}
            pq.write_table(pa.table(cols), path)
    finally:
        if writer is not None:
            writer.close()


def _write_hdf5(
    loaders: dict[str, Any], meta: DatasetMetadata, out: Path, info: ExportInfo
) -> None:
    import h5py

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.incomplete-{secrets.token_hex(4)}")
    try:
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.attrs["metadata"] = dumps_json(meta.model_dump(mode="json"))
            h5.attrs["export"] = dumps_json(info.to_json())
            for name, ld in loaders.items():
                group = h5.create_group(name, track_order=True)
                n = ld.num_examples
                kinds = {f.name: stored_feature(f) for f in meta.features}
                dsets: dict[str, Any] = {}
                for f in meta.features:
                    dt, shape = kinds[f.name].hdf5_layout(n)
                    dsets[f.name] = group.create_dataset(f.name, shape=shape, dtype=dt)
                row = 0
                for batch in ld.dataset():
                    b = None
                    for f in meta.features:
                        col = kinds[f.name].hdf5_column(batch[f.name], dsets[f.name].dtype)
                        b = len(col)
                        dsets[f.name][row : row + b] = col
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
