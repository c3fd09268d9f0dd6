"""Preprocess on Beam: the in-process driver's two passes, spread over workers batch by batch.

The snapshot's rows are cut into the batches the in-process driver reads (rows
[i·B, (i+1)·B), B = `preprocess.batch_rows`); a task is a range of consecutive batches.

- Pass 1: each worker runs `fit_batch` on its batches; a `CombineGlobally` merges the partial
  states *in batch order* (a partial waits until every batch before it has been merged, so the
  float sums are the in-process driver's, bit for bit) and finalizes the state.
- Pass 2: the driver first transforms batches until every transform is `settled` (an image
  feature's first shape), then each worker transforms its batches with a copy of those
  transforms and writes each batch's output as an Arrow file; then one worker per split
  appends the batches, in order, to `<split>.parquet` exactly as the in-process driver does.

Errors are reported for the first bad batch in row order, whichever worker met it first;
a refit (train rows whose image fails in pass 2 under `on_error: skip`) reruns both passes,
as in-process.
"""

from __future__ import annotations

import copy
import itertools
import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from dataops.artifacts import Manifest
from dataops.beam import beam_args
from dataops.beam.io import (
    exists,
    is_url,
    join,
    open_parquet,
    output_dir,
    put_files,
    read_bytes,
    read_json,
    read_rows,
    use_options,
    work_dir,
    write_bytes,
)
from dataops.beam.runner import run_tasks
from dataops.config import OnError, PreprocessParams
from dataops.errors import DatasetError
from dataops.features.base import Transform
from dataops.stages.ingest import MANIFEST_FILE, SNAPSHOT_FILE, read_manifest
from dataops.stages.preprocess import (
    BatchFit,
    PreprocessResult,
    Run,
    SplitWriter,
    finalize_state,
    fit_batch,
    transform_batch,
    write_state,
)

_SPLIT = "__dataops_split"
_KEEP = "__dataops_keep"


def run_preprocess_beam(
    params: PreprocessParams,
    snapshot: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    options: str | Sequence[str] | None = None,
    batches_per_task: int = 1,
) -> PreprocessResult:
    """`run_preprocess` on Beam: the same `out/<split>.parquet` and `out/state.json` bytes.

    `options`: Beam pipeline options (default: `$DATAOPS_BEAM_OPTIONS`); `batches_per_task`:
    consecutive batches one worker handles as one element (the outputs do not depend on it).
    """
    args = beam_args(options)
    use_options(args)
    manifest = (
        Manifest.parse(read_json(join(snapshot, MANIFEST_FILE)), join(snapshot, MANIFEST_FILE))
        if is_url(snapshot)
        else read_manifest(snapshot)
    )
    pf_path = join(snapshot, SNAPSHOT_FILE)
    if not exists(pf_path):
        raise DatasetError(f"{pf_path}: not found — run the ingest stage first")
    run = Run(params, pf_path, manifest, on_error)  # type: ignore[arg-type]  # a path or URL
    total = open_parquet(pf_path).metadata.num_rows
    num_batches = math.ceil(total / params.batch_rows)
    per = max(1, batches_per_task)
    tasks = [(a, min(a + per, num_batches)) for a in range(0, num_batches, per)]
    late: set[int] = set()
    with work_dir(args) as work:
        for attempt in itertools.count():
            state, unfit = _fit_state(run, tasks, num_batches, late, args, work)
            parts = join(work, f"parts-{attempt}")
            done = _write_splits(run, state, unfit, tasks, num_batches, args, work, parts, out)
            if isinstance(done, PreprocessResult):
                return done
            late |= done
    raise AssertionError("unreachable")


def _batch(run: Run, i: int) -> tuple[pa.Table, np.ndarray, int]:
    """Batch i of the snapshot (as the in-process driver reads it), its splits and first row."""
    start = i * run.params.batch_rows
    table = read_rows(run.snapshot, start, start + run.params.batch_rows)
    return table, run.split_of(table), start


class _FitInOrder(beam.CombineFn):
    """Merges the per-batch partial states in batch order (see the module docstring).

    The accumulator is [next batch to merge, merged partials of batches < next, waiting
    batches by index, not-fitted rows, first error (batch, message)]; only the accumulator
    that holds batch 0 advances, the others hold batches waiting for their turn.
    """

    def __init__(self, run: Run, num_batches: int) -> None:
        self.run, self.num_batches = run, num_batches

    def create_accumulator(self) -> list[Any]:
        return [0, [f.empty_partial() for f in self.run.features], {}, set(), None]

    def _advance(self, acc: list[Any]) -> list[Any]:
        features = self.run.features
        while acc[0] in acc[2]:
            fit: BatchFit = acc[2].pop(acc[0])
            if fit.partials:
                acc[1] = [
                    f.merge(p, q) for f, p, q in zip(features, acc[1], fit.partials, strict=True)
                ]
            acc[0] += 1
        return acc

    def add_input(self, acc: list[Any], item: tuple[int, BatchFit]) -> list[Any]:
        i, fit = item
        acc[2][i] = fit
        acc[3].update(fit.unfit)
        if fit.error is not None and (acc[4] is None or i < acc[4][0]):
            acc[4] = (i, fit.error)
        return self._advance(acc)

    def merge_accumulators(self, accs: Any) -> list[Any]:
        accs = list(accs)
        out = max(accs, key=lambda a: a[0])
        for a in accs:
            if a is out:
                continue
            out[2].update(a[2])
            out[3] |= a[3]
            if a[4] is not None and (out[4] is None or a[4][0] < out[4][0]):
                out[4] = a[4]
        return self._advance(out)

    def compact(self, acc: list[Any]) -> list[Any]:
        return acc

    def extract_output(self, acc: list[Any]) -> tuple[str | None, dict[str, Any] | None, set[int]]:
        if acc[4] is not None and self.run.on_error == "fail":
            return acc[4][1], None, acc[3]
        if acc[0] != self.num_batches:
            raise DatasetError(
                f"preprocess on Beam: merged {acc[0]} of {self.num_batches} batches in order; batch {acc[0]} is missing"
            )
        return None, finalize_state(self.run, acc[1]), acc[3]


def _fit_state(
    run: Run,
    tasks: list[tuple[int, int]],
    num_batches: int,
    exclude: set[int],
    args: list[str],
    work: str,
) -> tuple[dict[str, Any], set[int]]:
    """Pass 1 on Beam: the fitted state and the snapshot rows not fitted (as `_fit_state`)."""

    def fit(task: tuple[int, int]) -> Iterator[tuple[int, BatchFit]]:
        for i in range(*task):
            table, split, start = _batch(run, i)
            yield i, fit_batch(run, table, split, start, exclude)

    combine = _FitInOrder(run, num_batches)
    error, state, unfit = run_tasks(tasks, fit, args, work, combine=combine, label="fit")
    if error is not None:
        raise DatasetError(error)
    return state, unfit | exclude


def _write_splits(
    run: Run,
    state: dict[str, Any],
    unfit: set[int],
    tasks: list[tuple[int, int]],
    num_batches: int,
    args: list[str],
    work: str,
    parts: str,
    out: str | Path,
) -> PreprocessResult | set[int]:
    """Pass 2 on Beam (as the in-process `_write_splits`)."""
    transforms = [f.transformer(state.get(f.name)) for f in run.features]
    i = 0
    while i < num_batches and not all(t.settled for t in transforms):
        table, split, start = _batch(run, i)  # settle what the pass carries, as in-process
        transform_batch(run, transforms, table, split, start, unfit)
        i += 1

    def transform(task: tuple[int, int]) -> Iterator[tuple[int, list[Any], list[Transform]]]:
        mine = copy.deepcopy(transforms)
        rows = []
        for i in range(*task):
            table, split, start = _batch(run, i)
            part = transform_batch(run, mine, table, split, start, unfit)
            result = part.table.append_column(_SPLIT, pa.array(split, pa.int32()))
            result = result.append_column(_KEEP, pa.array(part.keep))
            write_bytes(join(parts, f"{i:012d}.arrow"), _ipc(result))
            counts = [int(np.sum(part.keep & (split == s))) for s in range(len(run.split_names))]
            rows.append((i, counts, part.skipped, part.late, part.error))
        yield task[0], rows, mine

    done = sorted(run_tasks(tasks, transform, args, work, label="transform"), key=lambda r: r[0])
    skipped: dict[str, int] = dict(run.manifest.skipped)
    counts = dict.fromkeys(run.split_names, 0)
    late: set[int] = set()
    for _, rows, mine in done:
        for t, seen in zip(transforms, mine, strict=True):
            t.merge(seen)
        for _, n, sk, lt, error in rows:
            if error is not None and run.on_error == "fail":
                raise DatasetError(error)
            for reason, c in sk.items():
                skipped[reason] = skipped.get(reason, 0) + c
            late.update(lt)
            for name, c in zip(run.split_names, n, strict=True):
                counts[name] += c
    if late:
        return late
    if num_batches == 0:
        raise DatasetError("preprocess produced no rows")
    with output_dir(out) as dest:
        names = list(enumerate(run.split_names))
        run_tasks(
            names,
            lambda job: [_append_split(run, parts, num_batches, dest, *job)],
            args,
            work,
            label="write",
        )
        with tempfile.TemporaryDirectory(prefix="dataops-state-") as scratch:
            write_state(Path(scratch), run, state, transforms, counts, skipped)
            put_files(Path(scratch), dest)  # last: on an object store, the sign of a whole output
    return PreprocessResult(
        out=out if is_url(out) else Path(out),  # type: ignore[arg-type]
        num_examples=counts,
        skipped=dict(sorted(skipped.items())),
    )


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue())


def _append_split(run: Run, parts: str, num_batches: int, out: Any, index: int, name: str) -> int:
    """Write `<name>.parquet` from every batch's output, in batch order, as in-process."""
    with tempfile.TemporaryDirectory(prefix="dataops-split-") as scratch:
        rows = _append_split_into(run, parts, num_batches, Path(scratch), index, name)
        put_files(Path(scratch), out)
    return rows


def _append_split_into(
    run: Run, parts: str, num_batches: int, out: Path, index: int, name: str
) -> int:
    schema: pa.Schema | None = None
    writer = None
    rows = 0
    for i in range(num_batches):
        data = read_bytes(join(parts, f"{i:012d}.arrow"))
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        result = table.drop_columns([_SPLIT, _KEEP])
        if schema is None:
            schema = result.schema
        sel = table.column(_KEEP).to_numpy(zero_copy_only=False) & (
            table.column(_SPLIT).to_numpy(zero_copy_only=False) == index
        )
        if not sel.any():
            continue
        part = result.filter(pa.array(sel)).cast(schema)
        if writer is None:
            writer = SplitWriter(out, name, schema, run.params.batch_rows)
        writer.write(part)
        rows += part.num_rows
    if writer is None and schema is not None:
        writer = SplitWriter(out, name, schema, run.params.batch_rows)
    if writer is not None:
        writer.close()
    return rows
