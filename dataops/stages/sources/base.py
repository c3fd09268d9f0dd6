"""The contract every format reader keeps: a `Source` in, `Batch`es out, bad rows to `RowErrors`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from dataops.config import SourceParams
from dataops.errors import DatasetError

KEYLESS_COLUMN = "key"


@dataclass
class BadRow:
    key: str | None
    seq: int
    label: str
    reason: str


@dataclass
class RowErrors:
    """Bad rows met while reading one source: raise under `fail`, count by reason under `skip`."""

    policy: str
    counts: dict[str, int] = field(default_factory=dict)
    keyed: list[BadRow] = field(default_factory=list)  # drained by ingest after each batch
    unkeyed: dict[str, int] = field(default_factory=dict)

    def bad(
        self,
        reason: str,
        message: str,
        *,
        key: str | None = None,
        seq: int | None = None,
        label: str = "",
    ) -> None:
        if self.policy == "fail":
            raise DatasetError(
                message + " (set dataset.on_error: skip to drop such rows and count them)"
            )
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if key is not None and seq is not None:
            self.keyed.append(BadRow(key, seq, label, reason))
        else:
            self.unkeyed[reason] = self.unkeyed.get(reason, 0) + 1


@dataclass(frozen=True)
class Batch:
    table: pa.Table  # first column `__key` (string)
    rows: pa.Array  # string label of each row
    seqs: np.ndarray  # int64 record index of each row in its source


@dataclass(frozen=True)
class Source:
    params: SourceParams
    path: Path  # resolved
    rel: str  # project-relative path (posix), as recorded in the manifest
    key: str  # key column name in the file (unused when keyless)
    label: str  # path as written in params.yaml, for messages
    index: int  # position in ingest.sources, for messages naming the key
    keyless_prefix: str | None = None  # keyless ingest: key = f"{prefix}:{record index}"
    allowed: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return self.params.name

    def option(self, name: str) -> str:
        return f"ingest.sources.{self.index}.{name}"
