"""Ingest on Beam: a CSV source cut into byte ranges that workers read, the snapshot assembled in order.

The same functions as the in-process streamed path (`dataops.stages.sources.read_source` over a
`CsvRange`, `dataops.stages.snapshot`: `check_columns`, `key_hash`, `PartWriter`), so the same bytes:

1. The driver cuts the file's data lines into byte ranges of about `range_bytes`, each
   ending after a newline (`csv_ranges`).
2. One pipeline (its workers start once) runs three steps:
   - pass 1, one task per range: its newlines and blank lines (`count_lines`);
   - pass 2, one task per range, once every count is in (a side input): the number of the
     range's first line and the count of records before it come from the counts of the
     ranges before it, so line numbers in messages and keyless keys (`<source>:<record
     index>`) are those of a whole read. The rows are read exactly as in-process (CSV values
     are text: no type to infer, so there is nothing to merge between ranges but the counts),
     written as an Arrow stream file, with the sorted 64-bit hashes of its keys and its
     bad-row counts.
   - the parts of the snapshot (`dataops.stages.snapshot_files`: rows [k·R, (k+1)·R)), once
     every range is read and none met an error: one task per part takes its rows from the
     ranges' Arrow files and writes it with the in-process `PartWriter` (row groups of
     `batch_rows`), so the parts are encoded side by side and their bytes are the in-process
     ones.
3. The driver takes the results in range order — never in the order workers finished: the
   first error in file order is the one raised; the key hashes are checked for repeats (a
   repeat, or a collision, runs the in-process ingest instead, whose join keeps the first row);
   the parts are moved into the output and the manifest is written by the in-process code.

Other inputs (several sources, or another format) run the in-process ingest: their bytes are
the same by definition, and the run says so in its log. Sources and the snapshot are local paths
(ingest resolves sources inside the project); the scratch files go through Beam's filesystems.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.beam import beam_args
from dataops.beam.io import (
    is_url,
    join,
    move_tree,
    put_files,
    read_bytes,
    use_options,
    work_dir,
    write_bytes,
)
from dataops.beam.remote import LockedOutput, RemoteTarget, plan_target, record_with
from dataops.beam.runner import run_pipeline
from dataops.beam.upload import FileEntry, Put, mover, uploader
from dataops.config import IngestParams, OnError
from dataops.errors import ConfigError, DatasetError
from dataops.fsutil import atomic_dir
from dataops.stages.ingest import IngestResult, input_entries, run_ingest, write_manifest
from dataops.stages.snapshot import (
    Joined,
    PartWriter,
    check_columns,
    key_hash,
    one_source_accounts,
    row_column,
    snapshot_columns,
)
from dataops.stages.snapshot_files import part_name, part_rows
from dataops.stages.sources import read_source
from dataops.stages.sources.base import KEYLESS_COLUMN, RowErrors, Source
from dataops.stages.sources.csv import CsvRange, count_lines, csv_ranges
from dataops.stages.sources.paths import resolve_source
from dataops.stages.stream import KeySet

RANGE_BYTES = 64 << 20
"""Bytes of CSV per task (the outputs do not depend on it)."""


def run_ingest_beam(
    params: IngestParams,
    root: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    options: str | Sequence[str] | None = None,
    range_bytes: int = RANGE_BYTES,
    to_remote: str | None = None,
) -> IngestResult:
    """`run_ingest` on Beam: the same snapshot parts and `out/manifest.json` bytes.

    `options`: Beam pipeline options (default: `$DATAOPS_BEAM_OPTIONS`); `range_bytes`: bytes
    of CSV one worker reads as one task.

    With `to_remote` (a DVC remote's name) the workers upload the parts into the remote, the
    driver `manifest.json` and the stage's `dvc.lock` entry (`dataops.beam.remote`); an input
    the in-process ingest reads is written into a local scratch folder, then uploaded.
    """
    args = beam_args(options)
    target = _target(out, to_remote)  # before any work: every ConfigError first
    args = target.beam_args(args) if target is not None else args
    use_options(args)
    root = Path(root)
    sources = [resolve_source(params, root, i) for i in range(len(params.sources))]
    if len(sources) != 1 or sources[0].params.format != "csv":
        return _in_process(params, root, out, on_error, target)
    src = sources[0]
    spans = csv_ranges(src, range_bytes)
    inputs = input_entries([src], root)  # the input's sha256, in a thread while workers read
    with work_dir(args) as work:
        staged = join(work, "snapshot")
        put = uploader(target.objects) if target is not None else mover(staged)
        done, parts = _read_ranges(src, params, on_error, spans, args, work, put)
        for _, r in done:
            if "error" in r:
                raise (ConfigError if r["config"] else DatasetError)(r["error"])
        if src.keyless_prefix is None and _repeats(work, len(done)):
            return _in_process(params, root, out, on_error, target)  # the join keeps the first
        with tempfile.TemporaryDirectory(prefix="dataops-manifest-") as driver:
            good = num_rows = sum(r["rows"] for _, r in done)
            rows = sum(n for n, _ in parts.values())
            if rows != num_rows:
                raise DatasetError(
                    f"ingest on Beam: the snapshot's parts hold {rows} rows, the ranges read {num_rows}"
                )
            bad: dict[str, int] = {}
            owners: dict[str, str] = {}
            for _, r in done:
                for reason, n in r["bad"].items():
                    bad[reason] = bad.get(reason, 0) + n
                owners.update(dict.fromkeys(r["columns"], src.name))
            joined = Joined(num_rows, one_source_accounts(src, good, num_rows, bad), owners, {})
            result = write_manifest(Path(driver), params, inputs(), joined)
            summary = IngestResult(
                Path(out), result.num_rows, result.skipped, result.inputs_fingerprint
            )
            if target is not None:
                entries = [e for k in sorted(parts) for e in parts[k][1]]
                locked = record_with(target, entries, Path(driver))
                return RemoteIngestResult(**vars(summary), remote=target, locked=locked)
            with atomic_dir(out) as tmp:
                move_tree(staged, tmp)
                put_files(Path(driver), tmp)
    return summary


@dataclass(frozen=True)
class RemoteIngestResult(IngestResult):
    """`run_ingest_beam(..., to_remote=...)`: the snapshot is in the DVC remote, not at `out`."""

    remote: RemoteTarget
    locked: LockedOutput
    """The output's `dvc.lock` entry (`md5: <md5>.dir`, `size`, `nfiles`)."""


def _target(out: str | Path, to_remote: str | None) -> RemoteTarget | None:
    """`plan_target`; the sources must be in the workspace (ingest reads them there)."""
    if to_remote is None:
        return None
    target = plan_target(out, to_remote)
    if target.inputs:
        raise ConfigError(
            f"--to-remote: {target.inputs[0].def_path}, a source of stage '{target.stage}', "
            "is not in the workspace: ingest reads its sources there (dvc pull it first)"
        )
    return target


def _in_process(
    params: IngestParams,
    root: Path,
    out: str | Path,
    on_error: OnError,
    target: RemoteTarget | None,
) -> IngestResult:
    """The in-process ingest into `out` — or, with `target`, into a local scratch folder
    uploaded into the remote and recorded as the stage's output."""
    if target is None:
        return run_ingest(params, root, out, on_error)
    with tempfile.TemporaryDirectory(prefix="dataops-ingest-") as scratch:
        r = run_ingest(params, root, Path(scratch, "snapshot"), on_error)
        locked = record_with(target, [], Path(scratch, "snapshot"))
    return RemoteIngestResult(
        Path(out), r.num_rows, r.skipped, r.inputs_fingerprint, remote=target, locked=locked
    )


def _key_name(params: IngestParams) -> str:
    return params.key if params.key is not None else KEYLESS_COLUMN


def _repeats(work: str, parts: int) -> bool:
    """Whether a key hash repeats across the ranges' `.keys` files (bounded memory: `KeySet`
    spills to a local scratch folder)."""
    with tempfile.TemporaryDirectory(prefix="dataops-keys-") as scratch:
        keys = KeySet(Path(scratch))
        for i in range(parts):
            hashes = np.frombuffer(read_bytes(join(work, f"part-{i}.keys")), np.uint64)
            if not keys.add(hashes.copy()):
                return True
        return not keys.check()


def _read_ranges(
    src: Source,
    params: IngestParams,
    on_error: OnError,
    spans: list[tuple[int, int | None]],
    args: list[str],
    work: str,
    put: Put,
) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, tuple[int, list[FileEntry]]]]:
    """The whole read as one pipeline: every range's lines counted, every range read with
    the number of its first line and the records before it, then — when no range met an
    error — the snapshot's parts written side by side and handed to `put`. The ranges'
    results in range order, and per part its rows and `put`'s entries."""
    import apache_beam as beam

    line = 2 if src.params.header else 1
    tasks = list(enumerate(spans))
    key = _key_name(params)

    def count(task: tuple[int, tuple[int, int | None]]) -> tuple[int, tuple[int, int]]:
        return task[0], count_lines(src, *task[1])

    def read(
        task: tuple[int, tuple[int, int | None]], counted: list[tuple[int, tuple[int, int]]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        i, (start, stop) = task
        part = _numbered(line, start, stop, dict(counted), i)
        yield i, _read_part(src, params, on_error, part, join(work, f"part-{i}"))

    def plan(_: Any, ranges: list[tuple[int, dict[str, Any]]]) -> Iterator[int]:
        if any("error" in r for _, r in ranges):
            return  # the driver raises the first error in file order
        total = sum(r["rows"] for _, r in ranges)
        yield from range(math.ceil(total / part_rows(params.batch_rows)))

    def write(
        k: int, ranges: list[tuple[int, dict[str, Any]]]
    ) -> tuple[int, tuple[int, list[FileEntry]]]:
        ordered = sorted(ranges, key=lambda r: r[0])
        return k, _write_part(k, ordered, params.batch_rows, key, work, put)

    def build(p: Any) -> Any:
        counted: Any = []
        if len(spans) > 1:  # one range: it starts at the first line, no record before it
            counted = beam.pvalue.AsList(
                p
                | "line tasks" >> beam.Create(tasks, reshuffle=False)
                | "spread lines" >> beam.Reshuffle()
                | "lines" >> beam.Map(count)
            )
        ranges = (
            p
            | "range tasks" >> beam.Create(tasks, reshuffle=False)
            | "spread ranges" >> beam.Reshuffle()
            | "ranges" >> beam.FlatMap(read, counted)
        )
        parts = (
            p
            | "once" >> beam.Create([None])
            | "plan parts" >> beam.FlatMap(plan, beam.pvalue.AsList(ranges))
            | "spread parts" >> beam.Reshuffle()
            | "parts" >> beam.Map(write, beam.pvalue.AsList(ranges))
        )
        return (
            ranges | "tag ranges" >> beam.Map(lambda x: ("range", x)),
            parts | "tag parts" >> beam.Map(lambda x: ("part", x)),
        ) | "results" >> beam.Flatten()

    results = run_pipeline(build, args, work, label="ranges")
    done = sorted((x for tag, x in results if tag == "range"), key=lambda r: r[0])
    if [i for i, _ in done] != list(range(len(spans))):
        raise DatasetError(f"ingest on Beam: {len(done)} of {len(spans)} ranges came back")
    return done, dict(x for tag, x in results if tag == "part")


def _write_part(
    k: int,
    ranges: list[tuple[int, dict[str, Any]]],
    batch_rows: int,
    key: str,
    work: str,
    put: Put,
) -> tuple[int, list[FileEntry]]:
    """Part `k` of the snapshot — its rows [k·R, (k+1)·R) taken from the ranges' Arrow files —
    written by one `PartWriter` (as the in-process `OutWriter` cuts it, so the same bytes) and
    handed to `put` (the staging folder, or the DVC remote); its rows and `put`'s entries."""
    size = part_rows(batch_rows)
    total = sum(r["rows"] for _, r in ranges)
    parts = math.ceil(total / size)
    lo, hi = k * size, min((k + 1) * size, total)
    with tempfile.TemporaryDirectory(prefix="dataops-part-") as scratch:
        writer = PartWriter(Path(scratch, part_name(k, parts)), batch_rows, key, {})
        at = 0  # the first row of range i
        for i, r in ranges:
            first, last = max(lo, at), min(hi, at + r["rows"])
            if first < last:
                skip = first - at
                for batch in _arrow_batches(join(work, f"part-{i}.arrow")):
                    piece = batch.slice(skip, last - first) if skip < batch.num_rows else None
                    skip = max(0, skip - batch.num_rows)
                    if piece is not None and piece.num_rows:
                        writer.write(snapshot_columns(pa.Table.from_batches([piece]), key))
                        first += piece.num_rows
                    if first >= last:
                        break
            at += r["rows"]
        rows = writer.close()
        return rows, put(Path(scratch))


def _numbered(
    line: int, start: int, stop: int | None, counted: dict[int, tuple[int, int]], i: int
) -> CsvRange:
    """Range `i` with the number of its first line (`line`: the first data line's) and the
    count of records before it, from the newlines and blank lines of the ranges before it."""
    seq = 0
    for k in range(i):
        if k not in counted:
            raise DatasetError(f"ingest on Beam: the line count of range {k} is missing")
        newlines, blanks = counted[k]
        line += newlines
        seq += newlines - blanks
    return CsvRange(start, stop, line, seq)


def _arrow_batches(path: str) -> Iterator[pa.RecordBatch]:
    """The batches of a range's Arrow stream file, memory-mapped when local."""
    source = pa.memory_map(path) if not is_url(path) else pa.BufferReader(read_bytes(path))
    with source, pa.ipc.open_stream(source) as reader:
        yield from reader


def _read_part(
    src: Source, params: IngestParams, on_error: OnError, part: CsvRange, path: str
) -> dict[str, Any]:
    """Pass 2 for one range: its rows as `<path>.arrow` (an Arrow stream, the snapshot's
    columns), the sorted hashes of its keys (good and bad rows) as `<path>.keys`; returns the
    counts, or the error that stopped it (raised by the driver if it is the first in order)."""
    errors = RowErrors(on_error)
    owners: dict[str, str] = {}
    local = not is_url(path)
    if local:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    sink: Any = None  # the stream file, straight to disk when local
    stream = None
    hashes = [np.zeros(0, np.uint64)]
    good = 0
    try:
        for batch in read_source(src, params.batch_rows, errors, part):
            table = batch.table
            check_columns(table, src, _key_name(params), owners)
            if src.keyless_prefix is None:
                hashes.append(key_hash(table.column("__key")))
                if errors.keyed:
                    hashes.append(key_hash(pa.array([b.key for b in errors.keyed], pa.string())))
            errors.keyed = []
            table = table.replace_schema_metadata(None)
            table = table.append_column(row_column(src.name), batch.rows)
            if stream is None:
                sink = pa.OSFile(f"{path}.arrow", "wb") if local else pa.BufferOutputStream()
                stream = pa.ipc.new_stream(sink, table.schema)
            stream.write_table(table)
            good += table.num_rows
    except (ConfigError, DatasetError) as err:
        return {"error": str(err), "config": isinstance(err, ConfigError)}
    finally:
        if stream is not None:
            stream.close()
        if local and sink is not None:
            sink.close()
    if src.keyless_prefix is None and errors.keyed:  # bad rows after the range's last batch
        hashes.append(key_hash(pa.array([b.key for b in errors.keyed], pa.string())))
    if stream is not None and not local:
        write_bytes(f"{path}.arrow", sink.getvalue().to_pybytes())
    write_bytes(f"{path}.keys", np.sort(np.concatenate(hashes)).tobytes())
    return {"rows": good, "bad": errors.counts, "columns": list(owners)}
