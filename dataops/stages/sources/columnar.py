"""Parquet sources, streamed a record batch at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from dataops.errors import DatasetError
from dataops.stages.sources.base import Batch, RowErrors, Source
from dataops.stages.sources.rows import finish_batch, numbered


def read_parquet(src: Source, batch_rows: int, errors: RowErrors) -> Iterator[Batch]:
    """Batches of `batch_rows` rows, labelled `row N` (0-based)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(src.path, pre_buffer=False)  # else row groups stay buffered
    except (pa.ArrowInvalid, OSError) as err:
        raise DatasetError(f"{src.label}: not a readable Parquet file: {err}") from None
    start = 0
    for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
        seqs = np.arange(start, start + batch.num_rows, dtype=np.int64)
        rows = numbered("row ", seqs)
        start += batch.num_rows
        yield finish_batch(pa.Table.from_batches([batch]), src, rows, seqs, errors)
