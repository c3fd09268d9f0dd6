"""The snapshot's files: its rows cut into parts of `part_rows(batch_rows)` rows, named
`snapshot-00000-of-00003.parquet`, ... (the last part shorter), and read back as one sequence.

A part is written whole by one writer, from the rows it holds alone (row groups of exactly
`batch_rows` rows from its first row), so its bytes do not depend on who wrote it: the
in-process driver writes the parts one after the other, Beam workers write them side by side.
Readers see the parts as one table: `SnapshotFiles.iter_tables` cuts rows [start, stop) into
tables of exactly `batch_rows` rows across part boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops.errors import DatasetError

PART_BATCHES = 256
"""Row groups (of the ingest's `batch_rows` rows) in one part: 1,048,576 rows at the default
4096 — parts enough for every worker at scale, few enough that their footers cost nothing."""

PART_GLOB = "snapshot-*-of-*.parquet"
_PART = re.compile(r"snapshot-(\d{5})-of-(\d{5})\.parquet")


def part_rows(batch_rows: int) -> int:
    """Rows of every part but the last."""
    return batch_rows * PART_BATCHES


def part_name(index: int, parts: int) -> str:
    return f"snapshot-{index:05d}-of-{parts:05d}.parquet"


def part_names(names: list[str], where: str) -> list[str]:
    """The part file names among `names` (the files of the snapshot folder `where`), in order;
    refused unless they are exactly parts 0 .. M-1 of M."""
    found = sorted(n for n in names if _PART.fullmatch(n))
    if not found:
        old = (
            " (a `snapshot.parquet` of an older dataops is there)"
            if "snapshot.parquet" in names
            else ""
        )
        raise DatasetError(f"{where}: no snapshot part{old} — run the ingest stage first")
    total = int(_PART.fullmatch(found[0]).group(2))  # type: ignore[union-attr]
    expected = [part_name(k, total) for k in range(total)]
    if found != expected:
        missing = sorted(set(expected) - set(found)) or sorted(set(found) - set(expected))
        raise DatasetError(
            f"{where}: the snapshot's parts are not whole ({len(found)} files for {total} parts; "
            f"first odd one: {missing[0]}) — run the ingest stage again"
        )
    return found


def _open_local(path: str) -> pq.ParquetFile:
    # pre_buffer=False: Arrow would otherwise keep every row group read until the file closes.
    return pq.ParquetFile(path, pre_buffer=False)


class SnapshotFiles:
    """The parts of one snapshot, read as one sequence of rows. `opener` opens one part (a
    local path by default; the Beam driver passes one that reads object stores). Pickled
    (a Beam task), it carries the parts' row offsets, not their open files."""

    def __init__(
        self,
        paths: list[str],
        opener: Callable[[str], pq.ParquetFile] = _open_local,
        starts: list[int] | None = None,
    ) -> None:
        self.paths = paths
        self.opener = opener
        self._files: dict[int, pq.ParquetFile] = {}
        if starts is None:
            sizes = [self.file(k).metadata.num_rows for k in range(len(paths))]
            starts = np.cumsum([0, *sizes]).tolist()
        self.starts: list[int] = starts

    @classmethod
    def local(cls, directory: str | Path) -> SnapshotFiles:
        directory = Path(directory)
        names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
        return cls([str(directory / n) for n in part_names(names, str(directory))])

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "opener": self.opener, "starts": self.starts, "_files": {}}

    def checked(self, num_rows: int) -> SnapshotFiles:
        """Itself, once its rows are the `num_rows` its manifest counts."""
        if self.num_rows != num_rows:
            raise DatasetError(
                f"{self.where}: the snapshot's parts hold {self.num_rows} rows, its manifest.json "
                f"{num_rows} — run the ingest stage again"
            )
        return self

    @property
    def where(self) -> str:
        """The snapshot's folder, for messages."""
        return self.paths[0].rsplit("/", 1)[0] if self.paths else "snapshot"

    @property
    def num_rows(self) -> int:
        return self.starts[-1]

    @property
    def schema(self) -> pa.Schema:
        return self.file(0).schema_arrow

    def file(self, k: int) -> pq.ParquetFile:
        if k not in self._files:
            try:
                self._files[k] = self.opener(self.paths[k])
            except (pa.ArrowException, OSError) as err:
                raise _unreadable(self.paths[k], err) from None
        return self._files[k]

    def iter_rows(
        self, start: int, stop: int, batch_rows: int, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Rows [start, stop), in order, at most `batch_rows` per batch (cut at part ends);
        only the parts and row groups that hold them are read."""
        for k in range(len(self.paths)):
            lo, hi = self.starts[k], self.starts[k + 1]
            if hi <= start or lo >= stop:
                continue
            rows = iter_file_rows(
                self.file(k), max(start, lo) - lo, min(stop, hi) - lo, batch_rows, columns
            )
            try:
                yield from rows
            except (pa.ArrowException, OSError) as err:
                raise _unreadable(self.paths[k], err) from None

    def iter_tables(
        self, start: int, stop: int, batch_rows: int, columns: list[str] | None = None
    ) -> Iterator[pa.Table]:
        """Rows [start, stop) as tables of exactly `batch_rows` rows (the last one shorter),
        each with one chunk per column, whatever the parts and row groups."""
        pending: list[pa.RecordBatch] = []
        n = 0
        for batch in self.iter_rows(start, stop, batch_rows, columns):
            if not n and batch.num_rows == batch_rows:
                yield pa.Table.from_batches([batch])
                continue
            pending.append(batch)
            n += batch.num_rows
            while n >= batch_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                yield table.slice(0, batch_rows).combine_chunks()
                rest = table.slice(batch_rows)
                pending, n = rest.to_batches(), rest.num_rows
        if n:
            yield pa.Table.from_batches(pending).combine_chunks()

    def column_rows(self, column: str, start: int, stop: int) -> list[Any]:
        """Rows [start, stop) of one column, as Python values."""
        rows: list[Any] = []
        for batch in self.iter_rows(start, stop, max(1, stop - start), [column]):
            rows.extend(batch.column(0).to_pylist())
        return rows


def _unreadable(path: str, err: BaseException) -> DatasetError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return DatasetError(
        f"{path}: not a readable snapshot part ({first}) — run the ingest stage again"
    )


def iter_file_rows(
    pf: pq.ParquetFile,
    start: int,
    stop: int,
    batch_rows: int,
    columns: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Rows [start, stop) of an open Parquet file, in order, at most `batch_rows` per batch;
    only the row groups that hold the range are read, with one scan."""
    groups, first, offset = [], None, 0
    meta = pf.metadata
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            if first is None:
                first = offset
        elif offset >= stop:
            break
        offset += n
    if not groups or first is None:
        return
    skip, left = start - first, stop - start
    for batch in pf.iter_batches(
        batch_size=batch_rows, row_groups=groups, columns=columns, use_threads=False
    ):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        part = batch.slice(skip, left)
        skip = 0
        left -= part.num_rows
        if part.num_rows:
            yield part
        if left <= 0:
            return
