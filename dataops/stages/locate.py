"""Naming a snapshot row in preprocess's messages: its source file and line, and its key; the
row labels read from the snapshot only when a message needs them."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from dataops.artifacts import Manifest
from dataops.errors import DatasetError
from dataops.stages.snapshot import row_column
from dataops.stages.snapshot_files import SnapshotFiles


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
    only needed for bad rows)."""

    def __init__(self, snapshot: SnapshotFiles) -> None:
        self.snapshot = snapshot

    def __call__(self, column: str, start: int, stop: int) -> list[str]:
        """Snapshot rows [start, stop) of `column`."""
        rows = self.snapshot.column_rows(column, start, stop)
        if len(rows) != stop - start:
            raise DatasetError(
                f"{self.snapshot.where}: column '{column}' holds {len(rows)} of the "
                f"{stop - start} rows {start}..{stop - 1}"
            )
        return rows
