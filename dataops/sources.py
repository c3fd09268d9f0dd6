"""Readers for each supported source format, streaming `pyarrow.RecordBatch`es with a string key.

Each reader yields `(batch, rows)` where `rows` are the row labels a person would use to find
a record in that file (CSV/JSONL line numbers, array indices, image paths).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.config import SourceParams
from dataops.errors import ConfigError, DatasetError
from dataops.fsutil import sha256_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}


@dataclass
class RowErrors:
    """Bad rows met while reading: raise under `fail`, count by reason under `skip`."""

    policy: str
    counts: dict[str, int] = field(default_factory=dict)

    def bad(self, reason: str, message: str) -> None:
        if self.policy == "fail":
            raise DatasetError(
                message + " (set dataset.on_error: skip to drop such rows and count them)"
            )
        self.counts[reason] = self.counts.get(reason, 0) + 1


@dataclass(frozen=True)
class Source:
    params: SourceParams
    path: Path
    key: str
    label: str  # path as written in params.yaml, for messages

    def files(self) -> list[Path]:
        """Every input file of this source, in a stable order."""
        if self.params.format == "image_folder":
            return [p for _, p in _image_files(self.path)]
        return [self.path]


def resolve_source(params: SourceParams, root: Path, default_key: str, index: int) -> Source:
    path = root / params.path
    if not path.exists():
        raise ConfigError(
            f"params.yaml: key 'ingest.sources.{index}.path': {params.path} does not exist"
        )
    if params.format == "image_folder" and not path.is_dir():
        raise ConfigError(
            f"params.yaml: key 'ingest.sources.{index}.path': {params.path} is not a folder (format image_folder)"
        )
    return Source(params=params, path=path, key=params.key or default_key, label=params.path)


def manifest_entry(src: Source, root: Path) -> dict[str, Any]:
    """Content hash of every input file of a source, with paths relative to the project."""
    files = {}
    total = 0
    for p in src.files():
        files[p.relative_to(root).as_posix()] = sha256_file(p)
        total += p.stat().st_size
    return {
        "format": src.params.format,
        "path": src.params.path,
        "num_files": len(files),
        "num_bytes": total,
        "files": files,
    }


def input_bytes(src: Source) -> int:
    return sum(p.stat().st_size for p in src.files())


def _image_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for cls in sorted(d.name for d in root.iterdir() if d.is_dir()):
        for name in sorted(os.listdir(root / cls)):
            p = root / cls / name
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                out.append((cls, p))
    return out


def _key_array(
    values: Any, src: Source, rows: list[str], errors: RowErrors
) -> tuple[pa.Array, np.ndarray]:
    """Keys as strings, and a mask of rows whose key is usable."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_floating(arr.type):
        raise DatasetError(
            f"{src.label}: key column '{src.key}' holds floats; keys must be integers or strings"
        )
    if pa.types.is_integer(arr.type):
        arr = arr.cast(pa.string())
    elif pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    elif not pa.types.is_string(arr.type):
        raise DatasetError(
            f"{src.label}: key column '{src.key}' has type {arr.type}; keys must be integers or strings"
        )
    ok = np.ones(len(arr), dtype=bool)
    if arr.null_count:
        for i in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
            errors.bad("missing_key", f"{src.label}: {rows[i]}: key column '{src.key}' is empty")
            ok[i] = False
    return arr, ok


def _select(table: pa.Table, src: Source) -> pa.Table:
    if src.params.columns is None:
        return table
    missing = [c for c in src.params.columns if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"params.yaml: source '{src.params.name}': columns {missing} not in {src.label} (it has {table.column_names})"
        )
    keep = [src.key] + [c for c in src.params.columns if c != src.key]
    return table.select(keep)


def _finish(
    table: pa.Table, src: Source, rows: list[str], errors: RowErrors, key_values: Any = None
) -> tuple[pa.Table, list[str]]:
    """Normalize the key column to strings, load image path columns, drop bad rows."""
    if key_values is None:
        if src.key not in table.column_names:
            raise ConfigError(
                f"params.yaml: source '{src.params.name}': key column '{src.key}' not in {src.label} (it has {table.column_names})"
            )
        key_values = table.column(src.key)
        table = table.drop_columns([src.key])
    table = _select_nokey(table, src)
    keys, ok = _key_array(key_values, src, rows, errors)
    for col in src.params.image_columns:
        if col not in table.column_names:
            raise ConfigError(
                f"params.yaml: source '{src.params.name}': image column '{col}' not in {src.label}"
            )
        paths = table.column(col).to_pylist()
        data: list[bytes | None] = []
        for i, rel in enumerate(paths):
            if rel is None:
                data.append(None)
                continue
            p = src.path.parent / rel
            try:
                data.append(p.read_bytes())
            except OSError as err:
                errors.bad(
                    "unreadable_image",
                    f"{src.label}: {rows[i]}: image file {rel!r} cannot be read: {err.strerror}",
                )
                ok[i] = False
                data.append(None)
        table = table.set_column(table.column_names.index(col), col, pa.array(data, pa.binary()))
    table = table.add_column(0, "__key", keys)
    if not ok.all():
        table = table.filter(pa.array(ok))
        rows = [r for r, k in zip(rows, ok, strict=True) if k]
    return table, rows


def _select_nokey(table: pa.Table, src: Source) -> pa.Table:
    if src.params.columns is None:
        return table
    wanted = [c for c in src.params.columns if c != src.key]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"params.yaml: source '{src.params.name}': columns {missing} not in {src.label} (it has {table.column_names})"
        )
    return table.select(wanted)


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


def read_source(
    src: Source, batch_rows: int, errors: RowErrors
) -> Iterator[tuple[pa.Table, list[str]]]:
    """Stream `(table, row labels)` batches; each table's first column is `__key` (string)."""
    fmt = src.params.format
    if fmt == "csv":
        yield from _read_csv(src, batch_rows, errors)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(src.path)
        start = 0
        for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
            rows = [f"row {start + i}" for i in range(batch.num_rows)]
            start += batch.num_rows
            yield _finish(pa.Table.from_batches([batch]), src, rows, errors)
    elif fmt == "jsonl":
        yield from _read_jsonl(src, batch_rows, errors)
    elif fmt in ("npy", "npz", "hdf5"):
        yield from _read_arrays(src, batch_rows, errors)
    elif fmt == "image_folder":
        files = _image_files(src.path)
        for s in range(0, len(files), batch_rows):
            chunk = files[s : s + batch_rows]
            keys = [p.stem for _, p in chunk]
            rows = [p.relative_to(src.path).as_posix() for _, p in chunk]
            table = pa.table(
                {
                    src.params.image_column: pa.array(
                        [p.read_bytes() for _, p in chunk], pa.binary()
                    ),
                    src.params.label_column: pa.array([c for c, _ in chunk], pa.string()),
                }
            )
            yield _finish(table, src, rows, errors, key_values=pa.array(keys, pa.string()))
    else:  # pragma: no cover - the config model forbids it
        raise ConfigError(f"unknown source format {fmt!r}")


def _read_csv(
    src: Source, batch_rows: int, errors: RowErrors
) -> Iterator[tuple[pa.Table, list[str]]]:

    with open(src.path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise DatasetError(f"{src.label}: empty CSV file (no header row)")
    bad_rows: list[int] = []
    fatal: list[str] = []

    def on_invalid(row: Any) -> str:
        # An exception raised here would be swallowed by Arrow: remember it, stop the reader.
        msg = f"{src.label}: line {row.number}: expected {row.expected_columns} columns, got {row.actual_columns}"
        if errors.policy == "fail":
            fatal.append(msg)
            return "error"
        errors.bad("malformed_row", msg)
        bad_rows.append(row.number)
        return "skip"

    try:
        yield from _csv_batches(src, header, batch_rows, errors, on_invalid, bad_rows)
    except pa.ArrowInvalid as err:
        if fatal:
            errors.bad("malformed_row", fatal[0])
        raise DatasetError(f"{src.label}: cannot parse CSV: {err}") from None


def _csv_batches(
    src: Source,
    header: list[str],
    batch_rows: int,
    errors: RowErrors,
    on_invalid: Any,
    bad_rows: list[int],
) -> Iterator[tuple[pa.Table, list[str]]]:
    import pyarrow.csv as pcsv

    reader = pcsv.open_csv(
        src.path,
        read_options=pcsv.ReadOptions(use_threads=False, block_size=1 << 22),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.string() for c in header}, strings_can_be_null=True
        ),
    )
    line = 2  # 1-based line number of the first data row (after the header)
    pending: list[pa.RecordBatch] = []
    n_pending = 0
    for batch in reader:
        pending.append(batch)
        n_pending += batch.num_rows
        while n_pending >= batch_rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            head, rest = table.slice(0, batch_rows), table.slice(batch_rows)
            rows, line = _csv_lines(line, head.num_rows, bad_rows)
            yield _finish(head, src, rows, errors)
            pending, n_pending = rest.to_batches(), rest.num_rows
    if n_pending:
        table = pa.Table.from_batches(pending)
        rows, line = _csv_lines(line, table.num_rows, bad_rows)
        yield _finish(table, src, rows, errors)


def _csv_lines(line: int, n: int, bad: list[int]) -> tuple[list[str], int]:
    rows: list[str] = []
    skip = set(bad)
    while len(rows) < n:
        if line not in skip:
            rows.append(f"line {line}")
        line += 1
    return rows, line


def _read_jsonl(
    src: Source, batch_rows: int, errors: RowErrors
) -> Iterator[tuple[pa.Table, list[str]]]:
    schema: pa.Schema | None = None
    records: list[dict[str, Any]] = []
    rows: list[str] = []

    def flush() -> tuple[pa.Table, list[str]]:
        nonlocal schema
        if schema is None:
            try:
                schema = pa.Table.from_pylist(records).schema
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                schema = pa.Table.from_pylist(records[:1]).schema
        good, good_rows = [], []
        try:
            table = pa.Table.from_pylist(records, schema=schema)
            good_rows = rows
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            for rec, label in zip(records, rows, strict=True):
                try:
                    pa.Table.from_pylist([rec], schema=schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                    errors.bad("wrong_type", f"{src.label}: {label}: {err}")
                    continue
                good.append(rec)
                good_rows.append(label)
            table = pa.Table.from_pylist(good, schema=schema)
        return _finish(table, src, good_rows, errors)

    with open(src.path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
            except ValueError as err:
                errors.bad("malformed_row", f"{src.label}: line {number}: not a JSON object: {err}")
                continue
            records.append(rec)
            rows.append(f"line {number}")
            if len(records) >= batch_rows:
                yield flush()
                records, rows = [], []
    if records:
        yield flush()


def _read_arrays(
    src: Source, batch_rows: int, errors: RowErrors
) -> Iterator[tuple[pa.Table, list[str]]]:
    fmt = src.params.format
    handle: Any = None
    if fmt == "npy":
        arrays = {src.params.name: np.load(src.path, mmap_mode="r", allow_pickle=False)}
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
    try:
        lengths = {n: a.shape[0] for n, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DatasetError(f"{src.label}: arrays have different lengths on axis 0: {lengths}")
        total = next(iter(lengths.values()))
        key_arr = arrays.pop(src.key, None)
        for s in range(0, total, batch_rows):
            e = min(total, s + batch_rows)
            cols = {n: _fixed_column(np.asarray(a[s:e])) for n, a in arrays.items()}
            rows = [f"index {i}" for i in range(s, e)]
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
            yield _finish(table, src, rows, errors, key_values=keys)
    finally:
        if handle is not None:
            handle.close()
