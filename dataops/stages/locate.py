"""Naming a snapshot row in preprocess's messages: its source file and line, and its key; the
row labels read from the snapshot only when a message needs them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops.artifacts import Manifest
from dataops.errors import DatasetError
from dataops.stages.snapshot import row_column


class Locator:
    """Names a snapshot row for messages: its source file and line, and its key. The line
    comes from the row labels (`__row.<source>`) of the batch's table, or, when the passes did
    not read them, from `labels(column)` (the batch's rows of that snapshot column)."""

    def __init__(
        self,
        table: pa.Table,
        key: str,
        manifest: Manifest,
        labels: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.table, self.key, self.manifest, self.labels = table, key, manifest, labels
        self._labels: dict[str, list[str]] = {}

    def __call__(self, column: str, i: int) -> str:
        key = f"{self.key}={self.table.column(self.key)[i].as_py()!r}"
        source = self.manifest.columns.get(column)
        if source is None:
            return f"row {key}"
        if source not in self._labels:
            name = row_column(source)
            if name in self.table.column_names or self.labels is None:
                self._labels[source] = self.table.column(name).to_pylist()
            else:
                self._labels[source] = self.labels(name)
        path = self.manifest.sources[source].path
        return f"{path}: {self._labels[source][i]} ({key})"


class RowLabels:
    """Rows of a snapshot's row-label columns (`__row.<source>`), read only when a message
    names a row: the passes leave these columns out (as large as a short column each, and
    only needed for bad rows). The file and its row-group offsets are opened once per run."""

    def __init__(self, snapshot: Path) -> None:
        self.snapshot = snapshot
        self._file: pq.ParquetFile | None = None
        self._starts = np.zeros(1, dtype=np.int64)  # first row of each row group, then the end

    def __call__(self, column: str, start: int, stop: int) -> list[str]:
        """Snapshot rows [start, stop) of `column`."""
        if self._file is None:
            self._file = pq.ParquetFile(self.snapshot, pre_buffer=False)
            md = self._file.metadata
            sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
            self._starts = np.cumsum([0, *sizes])
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        last = int(np.searchsorted(self._starts, stop, side="left"))
        table = self._file.read_row_groups(
            list(range(first, last)), columns=[column], use_threads=False
        )
        rows = table.column(0).slice(start - int(self._starts[first]), stop - start).to_pylist()
        if len(rows) != stop - start:
            raise DatasetError(
                f"{self.snapshot}: column '{column}' holds {len(rows)} of the {stop - start} "
                f"rows {start}..{stop - 1}"
            )
        return rows

    def __getstate__(self) -> dict[str, Any]:  # a pickled run (Beam) reopens the file
        return {"snapshot": self.snapshot, "_file": None, "_starts": np.zeros(1, np.int64)}
