"""What every ingest path shares: the snapshot's writer (parts of row groups of exactly
`batch_rows` rows), the row accounts that must reconcile, the 64-bit key hash, the snapshot's own columns."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops.errors import DatasetError
from dataops.stages.snapshot_files import part_name, part_rows
from dataops.stages.sources import input_files
from dataops.stages.sources.base import Source

SEQ = "__seq"


def row_column(source: str) -> str:
    """Snapshot column holding, per row, where the row came from in that source's file."""
    return f"__row.{source}"


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def key_hash(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit FNV-1a of each key's UTF-8 bytes (vectorized over the keys, one step per byte
    position); the same on every machine, run and library version."""
    arr = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    arr = arr.cast(pa.string())
    n = len(arr)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int32, count=arr.offset + n + 1)[arr.offset :]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max(initial=0))):
            live = np.flatnonzero(lengths > j) if j else np.arange(n)
            h[live] = (h[live] ^ data[starts[live] + j].astype(np.uint64)) * _FNV_PRIME
    return h


def shapes_of(table: pa.Table) -> dict[str, list[int]]:
    meta = table.schema.metadata or {}
    raw = meta.get(b"dataops.shapes")
    return json.loads(raw) if raw else {}


@dataclass
class Accounts:
    """Row counts: per source (rows read = rows joined + rows skipped by reason) and per
    candidate example (examples read = examples written + examples skipped by reason)."""

    names: list[str]
    read: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    examples_skipped: dict[str, int] = field(default_factory=dict)
    written: int = 0

    def skip(self, source: str, reason: str, n: int = 1) -> None:
        if n:
            d = self.skipped.setdefault(source, {})
            d[reason] = d.get(reason, 0) + n

    def lost(self, reason: str, n: int = 1) -> None:
        if n:
            self.examples_skipped[reason] = self.examples_skipped.get(reason, 0) + n

    def report(self) -> dict[str, Any]:
        sources = {}
        for name in self.names:
            sk = dict(sorted(self.skipped.get(name, {}).items()))
            read = self.read.get(name, 0)
            if read != self.written + sum(sk.values()):
                raise DatasetError(
                    f"ingest: source '{name}': {read} rows read but {self.written} joined + "
                    f"{sum(sk.values())} skipped (internal accounting error)"
                )
            sources[name] = {"rows_read": read, "rows_joined": self.written, "rows_skipped": sk}
        ex = dict(sorted(self.examples_skipped.items()))
        return {
            "examples": {
                "read": self.written + sum(ex.values()),
                "written": self.written,
                "skipped": ex,
            },
            "sources": sources,
        }


Progress = Callable[[str, int | None, str], Callable[[int], None]]


@dataclass
class Joined:
    """What reading and joining the sources gave: the snapshot's rows, the counts, and which
    source each column came from."""

    num_rows: int
    acct: Accounts
    owners: dict[str, str]
    shapes: dict[str, list[int]]


def ticker(src: Source, progress: Progress | None) -> Callable[[int], None]:
    if progress is None:
        return lambda n: None
    images = len(input_files(src)) if src.params.format == "image_folder" else None
    return progress(f"ingest {src.name}", images, "rows")


def check_columns(table: pa.Table, src: Source, key_name: str, owners: dict[str, str]) -> None:
    for col in table.column_names[1:]:
        if col == key_name:
            raise DatasetError(
                f"{src.label}: column '{col}' has the name of the key; rename it or select other columns"
            )
        prev = owners.setdefault(col, src.name)
        if prev != src.name:
            raise DatasetError(
                f"column '{col}' appears in sources '{prev}' and '{src.name}'; select columns to avoid the clash"
            )


def one_source_accounts(src: Source, good: int, written: int, bad: dict[str, int]) -> Accounts:
    """The counts of one source whose keys do not repeat: every row read is written (`good`
    of them) or bad, and every bad row is one example skipped for its reason."""
    acct = Accounts([src.name])
    acct.read[src.name] = good + sum(bad.values())
    acct.written = written
    for reason, n in bad.items():
        acct.skip(src.name, reason, n)
        acct.lost(reason, n)
    return acct


def snapshot_columns(table: pa.Table, key: str) -> pa.Table:
    """A reader's table as the snapshot stores it: no `__seq`, the key under its name."""
    if SEQ in table.column_names:
        table = table.drop_columns([SEQ])
    return table.rename_columns([key if c == "__key" else c for c in table.column_names])


class OutWriter:
    """The snapshot in `directory`: its rows in parts of `part_rows(batch_rows)` rows
    (`dataops.stages.snapshot_files`), each written by a `PartWriter`, whatever the sizes of
    the tables handed in. The parts get their final names (`-of-<count>`) on `close`."""

    def __init__(self, directory: Path, batch_rows: int, key: str, shapes: dict[str, Any]) -> None:
        self.dir = directory
        self.batch_rows = batch_rows
        self.key = key
        self.shapes = shapes
        self.part_rows = part_rows(batch_rows)
        self.paths: list[Path] = []
        self.part: PartWriter | None = None
        self.in_part = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        table = snapshot_columns(table, self.key)
        start, n = 0, table.num_rows
        while start < n:
            if self.part is None:
                self.paths.append(self.dir / f"snapshot-{len(self.paths):05d}.incomplete")
                self.part = PartWriter(self.paths[-1], self.batch_rows, self.key, self.shapes)
            take = min(self.part_rows - self.in_part, n - start)
            self.part.write(table.slice(start, take))
            self.in_part += take
            start += take
            if self.in_part == self.part_rows:
                self._close_part()

    def _close_part(self) -> None:
        if self.part is not None:
            self.rows += self.part.close()
            self.part, self.in_part = None, 0

    def close(self) -> int:
        """Finish the last part and name the parts; the rows written."""
        self._close_part()
        for k, path in enumerate(self.paths):
            path.rename(self.dir / part_name(k, len(self.paths)))
        return self.rows

    def remove(self) -> None:
        """Delete every part written (the caller writes the snapshot another way)."""
        self._close_part()
        for k, path in enumerate(self.paths):
            path.unlink(missing_ok=True)
            (self.dir / part_name(k, len(self.paths))).unlink(missing_ok=True)
        self.paths, self.rows = [], 0


class PartWriter:
    """One part of the snapshot: row groups of exactly `batch_rows` rows (the last one
    shorter), whatever the sizes of the tables handed in, so the bytes do not depend on the
    partitioning or on the reader's batches. Rows are copied only to join the pieces of a row
    group that spans two tables; whole row groups are written from slices of the table handed
    in. Tables come as the snapshot stores them (`snapshot_columns`)."""

    def __init__(self, path: Path, batch_rows: int, key: str, shapes: dict[str, Any]) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.key = key
        self.shapes = shapes
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.n_pending = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        start, n = 0, table.num_rows
        if self.n_pending:
            need = self.batch_rows - self.n_pending
            if n < need:
                self.pending.append(table)
                self.n_pending += n
                return
            self._emit(pa.concat_tables([*self.pending, table.slice(0, need)]))
            self.pending, self.n_pending, start = [], 0, need
        whole = (n - start) // self.batch_rows * self.batch_rows
        if whole:
            self._emit(table.slice(start, whole))
        if start + whole < n:
            self.pending, self.n_pending = [table.slice(start + whole)], n - start - whole

    def _emit(self, table: pa.Table) -> None:
        """Write `table` (a multiple of batch_rows rows, or the last rows) as row groups of
        batch_rows rows; each column in one chunk, so that the page cuts depend only on the
        values."""
        table = table.combine_chunks()
        if self.writer is None:
            schema = table.schema.with_metadata(
                {
                    b"dataops.shapes": json.dumps(self.shapes, sort_keys=True).encode(),
                    b"dataops.key": self.key.encode(),
                }
            )
            self.writer = pq.ParquetWriter(
                self.path, schema, compression="zstd", use_dictionary=False
            )
        self.writer.write_table(
            table.replace_schema_metadata(self.writer.schema.metadata),
            row_group_size=self.batch_rows,
        )
        self.rows += table.num_rows

    def close(self) -> int:
        if self.n_pending:
            self._emit(pa.concat_tables(self.pending))
            self.pending, self.n_pending = [], 0
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return self.rows
