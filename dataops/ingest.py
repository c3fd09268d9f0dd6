"""Stage 1, ingest: read the declared sources, join them on the key, write a Parquet snapshot.

Memory stays bounded: sources are read in batches; when the inputs are larger than
`ingest.partition_bytes` they are hash-partitioned on the key into temporary Parquet files
first, and each partition is joined on its own (a grace hash join). Rows come out in the
order of the first source within each partition, so with one partition, in its order.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataops.config import IngestParams, OnError
from dataops.errors import DatasetError
from dataops.fsutil import atomic_dir, fingerprint, write_json
from dataops.sources import (
    RowErrors,
    Source,
    input_bytes,
    manifest_entry,
    read_source,
    resolve_source,
)

SNAPSHOT_FILE = "snapshot.parquet"
MANIFEST_FILE = "manifest.json"
_ORDER = "__order"


def row_column(source: str) -> str:
    """Snapshot column holding, per row, where the row came from in that source's file."""
    return f"__row.{source}"


@dataclass(frozen=True)
class IngestResult:
    out: Path
    num_rows: int
    skipped: dict[str, int]
    inputs_fingerprint: str


def _partition_of(keys: pa.Array, parts: int) -> np.ndarray:
    return np.fromiter(
        (zlib.crc32(k.encode()) % parts for k in keys.to_pylist()), dtype=np.int64, count=len(keys)
    )


def _shapes_of(table: pa.Table) -> dict[str, list[int]]:
    import json

    meta = table.schema.metadata or {}
    raw = meta.get(b"dataops.shapes")
    return json.loads(raw) if raw else {}


def run_ingest(
    params: IngestParams, root: str | Path, out: str | Path, on_error: OnError = "fail"
) -> IngestResult:
    """Join the sources of `params` into `out/snapshot.parquet` plus `out/manifest.json`."""
    root = Path(root)
    sources = [resolve_source(s, root, params.key, i) for i, s in enumerate(params.sources)]
    errors = RowErrors(on_error)
    total_bytes = sum(input_bytes(s) for s in sources)
    parts = max(1, math.ceil(total_bytes / params.partition_bytes))
    inputs = {s.params.name: manifest_entry(s, root) for s in sources}
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(prefix="dataops-ingest-") as scratch:
        owners: dict[str, str] = {}
        shapes: dict[str, list[int]] = {}
        writers: dict[tuple[int, int], pq.ParquetWriter] = {}
        memory: dict[tuple[int, int], list[pa.Table]] = {}
        order = 0
        for si, src in enumerate(sources):
            for table, rows in read_source(src, params.batch_rows, errors):
                for col in table.column_names[1:]:
                    prev = owners.setdefault(col, src.params.name)
                    if prev != src.params.name:
                        raise DatasetError(
                            f"column '{col}' appears in sources '{prev}' and '{src.params.name}'; select columns to avoid the clash"
                        )
                shapes.update(_shapes_of(table))
                table = table.replace_schema_metadata(None)
                table = table.append_column(
                    row_column(src.params.name), pa.array(rows, pa.string())
                )
                if si == 0:
                    table = table.append_column(
                        _ORDER, pa.array(np.arange(order, order + table.num_rows, dtype=np.int64))
                    )
                    order += table.num_rows
                pids = (
                    _partition_of(table.column("__key").combine_chunks(), parts)
                    if parts > 1
                    else np.zeros(table.num_rows, dtype=np.int64)
                )
                for p in np.unique(pids):
                    piece = table.filter(pa.array(pids == p)) if parts > 1 else table
                    k = (si, int(p))
                    if parts == 1:
                        memory.setdefault(k, []).append(piece)
                        continue
                    if k not in writers:
                        writers[k] = pq.ParquetWriter(
                            Path(scratch) / f"s{si}-p{int(p)}.parquet", piece.schema
                        )
                    writers[k].write_table(piece)
        for w in writers.values():
            w.close()

        def load(si: int, p: int) -> pa.Table | None:
            if parts == 1:
                pieces = memory.get((si, p))
                return pa.concat_tables(pieces) if pieces else None
            path = Path(scratch) / f"s{si}-p{p}.parquet"
            return pq.read_table(path) if path.exists() else None

        writer: pq.ParquetWriter | None = None
        num_rows = 0
        for p in range(parts):
            joined = _join_partition([load(si, p) for si in range(len(sources))], sources, errors)
            if joined is None or joined.num_rows == 0:
                continue
            joined = joined.rename_columns(
                [params.key if c == "__key" else c for c in joined.column_names]
            )
            if writer is None:
                schema = joined.schema.with_metadata(
                    {b"dataops.shapes": _json(shapes), b"dataops.key": params.key.encode()}
                )
                writer = pq.ParquetWriter(
                    tmp / SNAPSHOT_FILE, schema, compression="zstd", use_dictionary=False
                )
            writer.write_table(
                joined.replace_schema_metadata(writer.schema.metadata),
                row_group_size=params.batch_rows,
            )
            num_rows += joined.num_rows
        if writer is None:
            raise DatasetError(
                "ingest produced no rows: every source is empty or every row was skipped"
            )
        writer.close()
        skipped = dict(sorted(errors.counts.items()))
        manifest = {
            "params": params.model_dump(mode="json"),
            "key": params.key,
            "num_rows": num_rows,
            "columns": {c: owners[c] for c in sorted(owners)},
            "shapes": shapes,
            "skipped": skipped,
            "sources": inputs,
            "fingerprint": fingerprint(inputs),
        }
        write_json(tmp / MANIFEST_FILE, manifest)
    return IngestResult(
        out=Path(out),
        num_rows=num_rows,
        skipped=skipped,
        inputs_fingerprint=str(manifest["fingerprint"]),
    )


def _json(obj: Any) -> bytes:
    import json

    return json.dumps(obj, sort_keys=True).encode()


def _join_partition(
    tables: list[pa.Table | None], sources: list[Source], errors: RowErrors
) -> pa.Table | None:
    primary = tables[0]
    if primary is None:
        for t, src in zip(tables[1:], sources[1:], strict=True):
            if t is not None and t.num_rows:
                _unmatched(t, src, sources[0], errors)
        return None
    _check_unique(primary, sources[0])
    result = primary
    prow_col = row_column(sources[0].params.name)
    for t, src in zip(tables[1:], sources[1:], strict=True):
        if t is None:
            t = pa.table(
                {
                    "__key": pa.array([], pa.string()),
                    row_column(src.params.name): pa.array([], pa.string()),
                }
            )
        _check_unique(t, src)
        have = pc.is_in(result.column("__key"), value_set=t.column("__key").combine_chunks())
        if not pc.all(have).as_py():
            missing = result.filter(pc.invert(have))
            prow = primary.filter(
                pc.is_in(
                    primary.column("__key"), value_set=missing.column("__key").combine_chunks()
                )
            )
            for key, row in zip(
                prow.column("__key").to_pylist(), prow.column(prow_col).to_pylist(), strict=True
            ):
                errors.bad(
                    f"missing_in_{src.params.name}",
                    f"source '{src.params.name}' ({src.label}) has no row for key {key!r} ({sources[0].label}: {row})",
                )
            result = result.filter(have)
        extra = pc.invert(
            pc.is_in(t.column("__key"), value_set=primary.column("__key").combine_chunks())
        )
        if pc.any(extra).as_py():
            _unmatched(t.filter(extra), src, sources[0], errors)
        # A gather by key position (Acero's join does not carry list columns).
        pos = pc.index_in(result.column("__key"), value_set=t.column("__key").combine_chunks())
        matched = t.take(pos).drop_columns(["__key"])
        for name in matched.column_names:
            result = result.append_column(name, matched.column(name))
    result = result.sort_by(_ORDER).drop_columns([_ORDER])
    return result.combine_chunks()


def _unmatched(t: pa.Table, src: Source, primary: Source, errors: RowErrors) -> None:
    for key, row in zip(
        t.column("__key").to_pylist(),
        t.column(row_column(src.params.name)).to_pylist(),
        strict=True,
    ):
        errors.bad(
            f"missing_in_{primary.params.name}",
            f"{src.label}: {row}: key {key!r} has no row in source '{primary.params.name}' ({primary.label})",
        )


def _check_unique(t: pa.Table, src: Source) -> None:
    keys = t.column("__key")
    if pc.count_distinct(keys).as_py() != t.num_rows:
        counts = pc.value_counts(keys.combine_chunks())
        dup = [v["values"] for v in counts.to_pylist() if v["counts"] > 1][:5]
        raise DatasetError(f"{src.label}: key column '{src.key}' has duplicate values, e.g. {dup}")


def read_manifest(directory: str | Path) -> dict[str, Any]:
    import json

    path = Path(directory) / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found — run the ingest stage first") from None
