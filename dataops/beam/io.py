"""Reading a row range of a Parquet file, so any worker can read its part of a split alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def open_parquet(path: Any) -> pq.ParquetFile:
    """A Parquet file on any filesystem Beam knows (a local path, `s3://`, `gs://`)."""
    path = str(path)
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems

        return pq.ParquetFile(FileSystems.open(path), pre_buffer=False)
    # pre_buffer=False: Arrow would otherwise keep every row group read until the file closes.
    return pq.ParquetFile(path, pre_buffer=False)


def iter_rows(path: Any, start: int, stop: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Rows [start, stop) of a Parquet file, in order, at most `batch_rows` per batch.

    Only the row groups that hold the range are read.
    """
    pf = open_parquet(path)
    groups, first, offset = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            if first is None:
                first = offset
        offset += n
    if not groups or first is None:
        return
    skip, left = start - first, stop - start
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=groups, use_threads=False):
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


def read_rows(path: Any, start: int, stop: int) -> pa.Table:
    """Rows [start, stop) of a Parquet file as one table with one chunk per column."""
    pf = open_parquet(path)
    batches = list(iter_rows(path, start, stop, max(1, stop - start)))
    if not batches:
        return pf.schema_arrow.empty_table()
    return pa.Table.from_batches(batches).combine_chunks()
