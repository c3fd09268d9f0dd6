"""Preprocess on Beam: the in-process driver's two passes, spread over workers in ranges of batches.

The snapshot's rows are cut into the batches the in-process driver reads (rows
[i·B, (i+1)·B), B = `preprocess.batch_rows`); a task is a range of many consecutive batches
(a few tasks per worker, `tasks_for`), which opens the snapshot once and reads exactly the row
groups that hold its rows. One attempt is one pipeline (its workers start once):

- Pass 1: each task runs `fit_batch` on its batches and returns every batch's partial state;
  it keeps its rows' split indexes in the work folder for pass 2 (as the in-process driver's
  scratch file: the keys are hashed once).
- Fit (one worker): the partial states are merged *in batch order* (so the float sums are the
  in-process driver's, bit for bit) and finalized; the transforms are `settled` on the first
  batches (an image feature's first shape) and batch 0 gives the output schema every split is
  cast to, as in-process.
- Pass 2: each task transforms its batches with a copy of those transforms and writes, per
  split, its kept rows as one Arrow file (a part); only counts come back to the driver.
- Write (one job per worker at most, the splits balanced by their ratios: train alone, the
  small splits together, each written by its own thread): the parts are appended, in task
  order and batch by batch, to `<split>.parquet` exactly as the in-process driver does, in the
  work folder; the driver moves them into the output once no error and no late row was found.

Errors are reported for the first bad batch in row order, whichever worker met it first;
a refit (train rows whose image fails in pass 2 under `on_error: skip`) reruns the pipeline,
as in-process reruns both passes.

The tasks are planned by `dataops.beam.tasks`; pass 2's part files and their assembly into
`<split>.parquet`, `dataops.beam.parts`.
"""

from __future__ import annotations

import copy
import itertools
import math
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.artifacts import Manifest
from dataops.beam import beam_args
from dataops.beam.io import (
    is_url,
    join,
    move_tree,
    output_dir,
    put_files,
    read_artifact,
    read_bytes,
    use_options,
    work_dir,
    write_bytes,
)
from dataops.beam.parts import append_splits, part_name, snapshot_parts
from dataops.beam.remote import LockedOutput, RemoteTarget, input_folder, plan_target, record_with
from dataops.beam.runner import run_pipeline
from dataops.beam.tasks import balanced_groups, tasks_for, workers_of
from dataops.beam.upload import FileEntry, mover, uploader
from dataops.config import OnError, PreprocessParams
from dataops.errors import DatasetError
from dataops.features.base import Transform
from dataops.stages.ingest import MANIFEST_FILE, read_manifest
from dataops.stages.preprocess import (
    BatchFit,
    PreprocessResult,
    Run,
    finalize_state,
    fit_batch,
    transform_batch,
    write_state,
)


def run_preprocess_beam(
    params: PreprocessParams,
    snapshot: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    options: str | Sequence[str] | None = None,
    batches_per_task: int | None = None,
    to_remote: str | None = None,
) -> PreprocessResult:
    """`run_preprocess` on Beam: the same `out/<split>.parquet` and `out/state.json` bytes.

    `options`: Beam pipeline options (default: `$DATAOPS_BEAM_OPTIONS`); `batches_per_task`:
    consecutive batches one worker handles as one task (default: `tasks_for`'s; the outputs do
    not depend on it).

    With `to_remote` (a DVC remote's name) the write jobs upload `<split>.parquet` into the
    remote, the driver `state.json` and the stage's `dvc.lock` entry (`dataops.beam.remote`);
    a `snapshot` missing from the workspace is read from there at the version dvc.lock records.
    """
    args = beam_args(options)
    target = plan_target(out, to_remote) if to_remote is not None else None  # before any work
    args = target.beam_args(args) if target is not None else args
    use_options(args)
    source = input_folder(snapshot, target, "ingest")
    path = source(MANIFEST_FILE)
    manifest = (
        read_manifest(snapshot) if source.local else Manifest.loads(read_artifact(path), path)
    )
    files = snapshot_parts(snapshot, source.objects).checked(manifest.num_rows)
    run = Run(params, files, manifest, on_error)
    total = files.num_rows
    num_batches = math.ceil(total / params.batch_rows)
    if num_batches == 0:
        raise DatasetError("preprocess produced no rows")
    tasks = tasks_for(num_batches, workers_of(args), batches_per_task)
    late: set[int] = set()
    with work_dir(args) as work:
        for attempt in itertools.count():
            scratch = join(work, f"pass-{attempt}")
            done = _passes(run, tasks, num_batches, late, args, scratch, out, target)
            if isinstance(done, PreprocessResult):
                return done
            late |= done
    raise AssertionError("unreachable")


def _batches(
    run: Run, first: int, stop: int, splits: np.ndarray | None = None
) -> Iterator[tuple[int, pa.Table, np.ndarray]]:
    """Batches first .. stop - 1 of the snapshot (as the in-process driver reads them: the
    same rows and columns), each with its number and the split of its rows (hashed, or taken
    from `splits`: those of every row of the range); the snapshot is opened once and only the
    row groups that hold these rows are read."""
    b = run.params.batch_rows
    columns = run.read_columns(run.snapshot.schema.names)
    at = 0
    for i, table in enumerate(
        run.snapshot.iter_tables(first * b, stop * b, b, columns), start=first
    ):
        if splits is None:
            yield i, table, run.split_of(table)
            continue
        split = splits[at : at + table.num_rows]
        if len(split) != table.num_rows:
            raise DatasetError(
                f"preprocess on Beam: the split cache of batches {first}..{stop - 1} ends at row {first * b + at}"
            )
        at += table.num_rows
        yield i, table, split


@dataclass(frozen=True)
class _Fitted:
    """Between the passes (one worker): the first pass-1 error in row order, or the fitted
    state, the rows not fitted, the transforms settled as in-process and the output schema
    (batch 0's)."""

    error: str | None
    state: dict[str, Any] = field(default_factory=dict)
    unfit: set[int] = field(default_factory=set)
    transforms: list[Transform] = field(default_factory=list)
    schema: pa.Schema | None = None


@dataclass(frozen=True)
class _TaskOut:
    """Pass 2 of one task: per batch (in order) its rows kept per split, the bad rows by
    reason, the late train rows and its first error; per split the rows of each non-empty
    batch in its part file; the task's copy of the transforms."""

    first: int
    batches: list[tuple[int, list[int], dict[str, int], list[int], str | None]]
    parts: dict[int, list[int]]
    transforms: list[Transform]


def _passes(
    run: Run,
    tasks: list[tuple[int, int]],
    num_batches: int,
    exclude: set[int],
    args: list[str],
    work: str,
    out: str | Path,
    target: RemoteTarget | None,
) -> PreprocessResult | set[int]:
    """Both passes as one pipeline (its workers start once): pass 1 on every task, the fit
    on one worker, pass 2 on every task writing its parts, then the write jobs (`balanced_groups`
    of the splits) append them into `<split>.parquet` under a staging folder — unless an error or a late train row
    was found, which the driver then raises or refits for (`_write_splits`'s outcomes)."""
    import apache_beam as beam

    b = run.params.batch_rows
    n_splits = len(run.split_names)
    stop_at_error = run.on_error == "fail"
    parts, staged, cache = join(work, "parts"), join(work, "out"), join(work, "splits")
    put = uploader(target.objects) if target is not None else mover(staged)
    names = run.split_names
    ratios = [run.params.split.ratios[n] for n in names]
    jobs = [[(i, names[i]) for i in g] for g in balanced_groups(ratios, workers_of(args))]

    def fit(task: tuple[int, int]) -> Iterator[list[tuple[int, BatchFit]]]:
        fits, splits = [], []
        for i, table, split in _batches(run, *task):
            splits.append(split.astype(np.int8))  # at most 100 splits (config): int8 fits
            fitted = fit_batch(run, table, split, i * b, exclude)
            fits.append((i, fitted))
            if fitted.error is not None and stop_at_error:
                break  # no later batch of this task can hold an earlier error
        # pass 2 reads the splits back instead of hashing every key again (as in-process)
        write_bytes(join(cache, f"{task[0]:012d}.bin"), b"".join(x.tobytes() for x in splits))
        yield fits

    def settle(_: Any, fits: Iterable[list[tuple[int, BatchFit]]]) -> _Fitted:
        """Merge the partial states in batch order (the in-process float sums, bit for bit) as
        the tasks' results stream in — only those ahead of a missing one wait, so memory does
        not grow with the snapshot — finalize, and settle the transforms on the first
        batches as in-process."""
        features = run.features
        partials = [f.empty_partial() for f in features]
        unfit = set(exclude)
        waiting: dict[int, list[tuple[int, BatchFit]]] = {}
        merged = 0
        for part in fits:
            if part:
                waiting[part[0][0]] = part
            while merged in waiting:
                for i, fitted in waiting.pop(merged):
                    if fitted.error is not None and stop_at_error:
                        return _Fitted(fitted.error)  # the first in row order
                    if i != merged:
                        return _Fitted(
                            f"preprocess on Beam: pass 1 returned batch {i} for batch {merged}"
                        )
                    unfit.update(fitted.unfit)
                    if fitted.partials:
                        partials = [
                            f.merge(p, q)
                            for f, p, q in zip(features, partials, fitted.partials, strict=True)
                        ]
                    merged += 1
        if merged != num_batches:
            return _Fitted(
                f"preprocess on Beam: pass 1 merged {merged} of {num_batches} batches in order; batch {merged} is missing"
            )
        state = finalize_state(run, partials)
        transforms = [f.transformer(state.get(f.name)) for f in features]
        schema = None
        for i, table, split in _batches(run, 0, num_batches):
            result = transform_batch(run, transforms, table, split, i * b, unfit)
            if schema is None:
                schema = result.table.schema  # batch 0's, as in-process
            if all(t.settled for t in transforms):
                break
        return _Fitted(None, state, unfit, transforms, schema)

    def transform(task: tuple[int, int], fitted: _Fitted) -> Iterator[_TaskOut]:
        if fitted.error is not None:
            return
        schema = fitted.schema
        mine = copy.deepcopy(fitted.transforms)
        rows: list[tuple[int, list[int], dict[str, int], list[int], str | None]] = []
        sizes: dict[int, list[int]] = {}
        writers: dict[int, Any] = {}
        writing = True  # until a late train row means the state must be refitted first
        cached = read_bytes(join(cache, f"{task[0]:012d}.bin"))
        splits = np.frombuffer(cached, dtype=np.int8).astype(np.intp)
        with tempfile.TemporaryDirectory(prefix="dataops-parts-") as scratch:
            for i, table, split in _batches(run, *task, splits):
                part = transform_batch(run, mine, table, split, i * b, fitted.unfit)
                counts = [0] * n_splits
                rows.append((i, counts, part.skipped, part.late, part.error))
                if part.error is not None and stop_at_error:
                    break  # the first error in row order is in this or an earlier batch
                writing = writing and not part.late
                if not writing:
                    continue
                # cast to batch 0's schema only when this batch's differs, as in-process
                same = part.table.schema.equals(schema, check_metadata=True)
                for si in range(n_splits):
                    sel = part.keep & (split == si)
                    if not sel.any():
                        continue
                    kept = part.table.filter(pa.array(sel))
                    if not same:
                        kept = kept.cast(schema)
                    if si not in writers:
                        path = Path(scratch, part_name(si, task[0]))
                        writers[si] = pa.ipc.new_file(str(path), schema)
                    writers[si].write_table(kept)
                    sizes.setdefault(si, []).append(kept.num_rows)
                    counts[si] = kept.num_rows
            for w in writers.values():
                w.close()
            if writing:
                put_files(Path(scratch), parts)
        yield _TaskOut(task[0], rows, sizes if writing else {}, mine)

    def write(
        job: list[tuple[int, str]], fitted: _Fitted, outs: list[_TaskOut]
    ) -> Iterator[tuple[str, int, list[FileEntry]]]:
        if fitted.error is not None or fitted.schema is None:
            return
        done = sorted(outs, key=lambda r: r.first)
        rows = [r for task in done for r in task.batches]
        if len(rows) != num_batches or any(
            lt or (error is not None and stop_at_error) for _, _, _, lt, error in rows
        ):
            return  # the driver raises the error or refits
        plan = [(task.first, task.parts) for task in done]
        yield from append_splits(run, fitted.schema, parts, plan, put, job)

    def tagged(tag: str) -> Any:
        return beam.Map(lambda x: (tag, x))

    def build(p: Any) -> Any:
        fits = (
            p
            | "fit tasks" >> beam.Create(tasks, reshuffle=False)
            | "spread fit" >> beam.Reshuffle()
            | "fit" >> beam.FlatMap(fit)
        )
        fitted = (
            p
            | "once" >> beam.Create([None])
            | "settle" >> beam.Map(settle, beam.pvalue.AsIter(fits))
        )
        outs = (
            p
            | "transform tasks" >> beam.Create(tasks, reshuffle=False)
            | "spread transform" >> beam.Reshuffle()
            | "transform" >> beam.FlatMap(transform, beam.pvalue.AsSingleton(fitted))
        )
        written = (
            p
            | "splits" >> beam.Create(jobs, reshuffle=False)
            | "spread write" >> beam.Reshuffle()
            | "write"
            >> beam.FlatMap(write, beam.pvalue.AsSingleton(fitted), beam.pvalue.AsList(outs))
        )
        return (
            fitted | "tag fitted" >> tagged("fitted"),
            outs | "tag outs" >> tagged("task"),
            written | "tag written" >> tagged("split"),
        ) | "results" >> beam.Flatten()

    results = run_pipeline(build, args, work, label="preprocess")
    fitted = next(x for tag, x in results if tag == "fitted")
    if fitted.error is not None:
        raise DatasetError(fitted.error)
    done = sorted((x for tag, x in results if tag == "task"), key=lambda r: r.first)
    transforms = fitted.transforms
    skipped: dict[str, int] = dict(run.manifest.skipped)
    counts = dict.fromkeys(run.split_names, 0)
    late: set[int] = set()
    for task in done:
        for t, seen in zip(transforms, task.transforms, strict=True):
            t.merge(seen)
        for _, n, sk, lt, error in task.batches:
            if error is not None and stop_at_error:
                raise DatasetError(error)
            for reason, c in sk.items():
                skipped[reason] = skipped.get(reason, 0) + c
            late.update(lt)
            for name, c in zip(run.split_names, n, strict=True):
                counts[name] += c
    if late:
        return late
    written = sum(len(task.batches) for task in done)
    if written != num_batches:
        raise DatasetError(
            f"preprocess on Beam: pass 2 returned {written} of {num_batches} batches"
        )
    split_files = [x for tag, x in results if tag == "split"]
    appended = {name: rows for name, rows, _ in split_files}
    if appended != counts:
        raise DatasetError(
            f"preprocess on Beam: wrote {appended} rows per split, pass 2 kept {counts}"
        )
    result = PreprocessResult(
        out=out if is_url(out) else Path(out),  # type: ignore[arg-type]
        num_examples=counts,
        skipped=dict(sorted(skipped.items())),
    )
    with tempfile.TemporaryDirectory(prefix="dataops-state-") as scratch:
        write_state(Path(scratch), run, fitted.state, transforms, counts, skipped)
        if target is not None:
            entries = [e for *_, es in split_files for e in es]
            locked = record_with(target, entries, Path(scratch))
            return RemotePreprocessResult(**vars(result), remote=target, locked=locked)
        with output_dir(out) as dest:
            move_tree(staged, dest)
            put_files(Path(scratch), dest)  # last: on an object store, the sign of a whole output
    return result


@dataclass(frozen=True)
class RemotePreprocessResult(PreprocessResult):
    """`run_preprocess_beam(..., to_remote=...)`: the output is in the DVC remote, not at `out`."""

    remote: RemoteTarget
    locked: LockedOutput
    """The output's `dvc.lock` entry (`md5: <md5>.dir`, `size`, `nfiles`)."""
