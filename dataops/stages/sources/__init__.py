"""Source readers, one module per format family, streaming `pyarrow` tables with a string key.

Each reader yields `Batch`es: the table (first column `__key`), the row labels a person would
use to find each record in that file (CSV/JSON Lines line numbers, JSON array elements, array
indices, image paths), and each row's record index in the source (0-based, counting bad rows,
not counting blank lines). A bad row is reported to `RowErrors`, which raises under
`on_error: fail` and, under `skip`, counts it and keeps its key (when it has one) so the join
can account for it once.

    base       the contract: Source, Batch, RowErrors, BadRow
    paths      resolve_source: containment (ingest.allow_outside), folders, devices, pipes
    encoding   undecodable bytes named, UTF-16/32 text refused, the codec to read with
    rows       a reader's table → Batch: keys as strings, columns selected, image paths loaded
    csv        CSV: header, chunked streaming, blank/malformed lines, byte ranges (CsvRange)
    jsontypes  the type of a JSON value position, widened over a source
    jsonl      JSON Lines and JSON arrays: streamed records, inferred types
    columnar   Parquet
    arrays     NumPy and HDF5
    images     image folders

This module holds the entry points over all of them: `read_source` (by format) and a source's
input files, size and manifest entry. Each module imports only those above it in this list.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataops.errors import ConfigError
from dataops.fsutil import sha256_file
from dataops.stages.sources.arrays import read_arrays
from dataops.stages.sources.base import Batch, RowErrors, Source
from dataops.stages.sources.columnar import read_parquet
from dataops.stages.sources.csv import CsvRange, read_csv
from dataops.stages.sources.encoding import refuse_wide_text
from dataops.stages.sources.images import ignored_files, image_files, read_image_folder
from dataops.stages.sources.jsonl import read_json


def input_files(src: Source) -> list[Path]:
    """Every input file of a source, in a stable order."""
    if src.params.format == "image_folder":
        return [p for _, p in image_files(src)]
    return [src.path]


def manifest_entry(src: Source, root: Path) -> dict[str, Any]:
    """Content hash of every input file of a source, with paths relative to the project."""
    files = {}
    total = 0
    for p in input_files(src):
        rel = (Path(src.rel) / p.relative_to(src.path)) if p != src.path else Path(src.rel)
        files[rel.as_posix()] = sha256_file(p)
        total += p.stat().st_size
    entry: dict[str, Any] = {
        "format": src.params.format,
        "path": src.rel,
        "num_files": len(files),
        "num_bytes": total,
        "files": files,
    }
    if src.params.format == "image_folder":
        # Files an image folder holds but does not read (another suffix, or outside any class
        # folder) are counted, never dropped silently.
        ignored = ignored_files(src)
        entry["ignored_files"] = {"count": len(ignored), "first": ignored[:5]}
    return entry


def input_bytes(src: Source) -> int:
    return sum(p.stat().st_size for p in input_files(src))


def read_source(
    src: Source, batch_rows: int, errors: RowErrors, part: CsvRange | None = None
) -> Iterator[Batch]:
    """Stream batches; each table's first column is `__key` (string). `part`: only that byte
    range of a CSV source (see `csv_ranges`)."""
    fmt = src.params.format
    if fmt in ("csv", "jsonl", "json"):
        refuse_wide_text(src)
    if fmt == "csv":
        yield from read_csv(src, batch_rows, errors, part)
    elif fmt == "parquet":
        yield from read_parquet(src, batch_rows, errors)
    elif fmt in ("jsonl", "json"):
        yield from read_json(src, batch_rows, errors)
    elif fmt in ("npy", "npz", "hdf5"):
        yield from read_arrays(src, batch_rows, errors)
    elif fmt == "image_folder":
        yield from read_image_folder(src, batch_rows, errors)
    else:  # pragma: no cover - the config model forbids it
        raise ConfigError(f"unknown source format {fmt!r}")
