"""Stage 2, preprocess: split by key hash, fit statistics on train, transform every split.

Two streaming passes over the snapshot: the first assigns splits and fits the state
(means and standard deviations, vocabularies) on train rows only; the second transforms
each batch and appends it to `<split>.parquet`. The fitted state goes to `state.json`.
Images are decoded only in the second pass; when `on_error: skip` drops a train row there,
the state is refitted without it, so statistics always come from the train rows written.
All arithmetic is NumPy on float64 in a fixed order, so results do not depend on threads.

This module is the driver: the passes, the writers and the refit. Which split a row goes to
is `stages.split_assign`; how a message names a row, `stages.locate`. What each feature kind
reads, fits and writes lives in `dataops.features`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops.artifacts import Manifest, PreprocessState, SplitCount, StateParams
from dataops.config import OnError, PreprocessParams
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, Transform
from dataops.features.registry import feature_for
from dataops.fsutil import atomic_dir
from dataops.stages.ingest import read_manifest
from dataops.stages.locate import Locator, RowLabels
from dataops.stages.snapshot_files import SnapshotFiles
from dataops.stages.split_assign import SplitCache, split_keys

STATE_FILE = "state.json"


@dataclass(frozen=True)
class PreprocessResult:
    out: Path
    num_examples: dict[str, int]
    skipped: dict[str, int]


def run_preprocess(
    params: PreprocessParams,
    snapshot: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    progress: Callable[[str, int | None, str], Callable[[int], None]] | None = None,
) -> PreprocessResult:
    """Transform the snapshot's parts into `out/<split>.parquet` and `out/state.json`."""
    snapshot = Path(snapshot)
    manifest = read_manifest(snapshot)
    files = SnapshotFiles.local(snapshot).checked(manifest.num_rows)
    rows = files.num_rows
    with tempfile.TemporaryFile(prefix="splits-") as scratch:
        run = Run(
            params,
            files,
            manifest,
            on_error,
            (progress("preprocess (2 passes)", 2 * rows, "rows") if progress else lambda n: None),
            SplitCache(scratch),
        )
        # Pass 1 checks everything but images (decoding them twice would double the cost), so
        # a train row can still be dropped in pass 2 for its image after it was fitted. Then
        # the state is refitted without those rows and pass 2 runs again: the statistics
        # always come from exactly the train rows written. Only `on_error: skip` with bad
        # images pays for it.
        late: set[int] = set()  # snapshot row numbers fitted in pass 1 but dropped in pass 2
        while True:
            state, unfit = _fit_state(run, late)
            done = _write_splits(run, state, out, unfit)
            if isinstance(done, PreprocessResult):
                return done
            late |= done


@dataclass(frozen=True)
class Run:
    """What both passes read: the params, the snapshot and how bad rows are handled."""

    params: PreprocessParams
    snapshot: SnapshotFiles
    manifest: Manifest
    on_error: OnError
    tick: Callable[[int], None] = lambda n: None  # progress: rows read, both passes
    splits: SplitCache = field(default_factory=SplitCache)  # the passes after the first

    @property
    def key(self) -> str:
        return self.manifest.key

    @cached_property
    def features(self) -> list[Feature[Any, Any]]:
        return [feature_for(f) for f in self.params.features]

    @property
    def split_names(self) -> list[str]:
        return list(self.params.split.ratios)

    @property
    def train_index(self) -> int:
        names = self.split_names
        return names.index("train") if "train" in names else 0

    def batches(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """One pass over the snapshot: each batch with the split index of its rows."""
        cached = self.splits.start()
        files = self.snapshot
        columns = self.read_columns(files.schema.names)
        for table in files.iter_tables(0, files.num_rows, self.params.batch_rows, columns):
            if cached:
                split = self.splits.read(table.num_rows)
            else:
                split = self.split_of(table)
                self.splits.write(split)
            yield table, split
            self.tick(table.num_rows)
        self.splits.done()

    def read_columns(self, names: list[str]) -> list[str] | None:
        """The snapshot columns the passes read: the key and each feature's input column; a
        column no feature uses is not read, nor are the row labels (`__row.*`: read by
        `RowLabels` for a message). None (every column) when one is missing, so
        `Batch.column`'s error lists them all."""
        wanted = {self.key, *(f.source_column for f in self.features)}
        if not wanted <= set(names):
            return None
        return [c for c in names if c in wanted]

    def split_of(self, table: pa.Table) -> np.ndarray:
        """The split index of each row of `table`."""
        split = self.params.split
        return split_keys(table.column(self.key), split.ratios, split.seed)

    @cached_property
    def row_labels(self) -> RowLabels:
        return RowLabels(self.snapshot)

    def new_batch(self, table: pa.Table, start: int) -> Batch:
        """The batch of snapshot rows `start .. start + table.num_rows - 1`."""
        stop = start + table.num_rows
        labels = lambda column: self.row_labels(column, start, stop)  # noqa: E731
        return Batch(table, Locator(table, self.key, self.manifest, labels), start)


class _Refit(Exception):
    def __init__(self, rows: set[int]) -> None:
        self.rows = rows


_SKIP_HINT = " (set dataset.on_error: skip to drop such rows and count them)"


@dataclass(frozen=True)
class BatchFit:
    """Pass 1 on one batch: each feature's partial state of its train rows, the snapshot row
    numbers left out as bad, and the message of its first bad row (None: none)."""

    partials: list[Any]
    unfit: list[int]
    error: str | None


def fit_batch(
    run: Run, table: pa.Table, split: np.ndarray, start: int, exclude: set[int]
) -> BatchFit:
    """Pass 1 on the batch of snapshot rows [start, start + len(table)): check the rows and
    fit each feature on its train rows that parse and are not in `exclude`."""
    features = run.features
    probe = run.new_batch(table, start)
    for f in features:
        f.check(probe)
    bad = np.flatnonzero(probe.bad.mask)
    error = probe.bad.reasons[int(bad[0])][1] + _SKIP_HINT if len(bad) else None
    if error is not None and run.on_error == "fail":
        return BatchFit([], [], error)
    use = (split == run.train_index) & ~probe.bad.mask
    for row in exclude:
        if start <= row < start + table.num_rows:
            use[row - start] = False
    # the checked batch: what a check read (numeric values) is not read again; a bad row a
    # partial fit would mark is already out of `use`
    partials = [f.partial_fit(probe, use) for f in features]
    return BatchFit(partials, [start + int(i) for i in bad], error)


def finalize_state(run: Run, partials: list[Any]) -> dict[str, Any]:
    """The fitted state (`state.json`'s `state`) from each feature's merged partial."""
    state: dict[str, Any] = {}
    for f, p in zip(run.features, partials, strict=True):
        fitted = f.finalize(p)
        if fitted is not None:
            state[f.name] = fitted
    return state


def _fit_state(run: Run, exclude: set[int]) -> tuple[dict[str, Any], set[int]]:
    """Pass 1: fit on train rows that parse, leaving out the snapshot rows in `exclude`.
    Returns the state and the snapshot row numbers not fitted (bad rows and `exclude`)."""
    features = run.features
    partials = [f.empty_partial() for f in features]
    unfit = set(exclude)
    start = 0
    for table, split in run.batches():
        part = fit_batch(run, table, split, start, exclude)
        if part.error is not None and run.on_error == "fail":
            raise DatasetError(part.error)
        unfit.update(part.unfit)
        partials = [
            f.merge(p, q) for f, p, q in zip(features, partials, part.partials, strict=True)
        ]
        start += table.num_rows
    return finalize_state(run, partials), unfit


@dataclass(frozen=True)
class BatchOut:
    """Pass 2 on one batch: the output columns of every row, which rows are kept (not bad),
    the bad rows counted by reason, the train rows fitted in pass 1 that turned out bad
    (snapshot row numbers) and the message of the first bad row (None: none)."""

    table: pa.Table
    keep: np.ndarray
    skipped: dict[str, int]
    late: list[int]
    error: str | None


def transform_batch(
    run: Run,
    transforms: list[Transform],
    table: pa.Table,
    split: np.ndarray,
    start: int,
    unfit: set[int],
) -> BatchOut:
    """Pass 2 on the batch of snapshot rows [start, start + len(table)): transform it."""
    batch = run.new_batch(table, start)
    cols: dict[str, pa.Array] = {}
    for t in transforms:
        cols.update(t(batch))
    bad = np.flatnonzero(batch.bad.mask)
    error = batch.bad.reasons[int(bad[0])][1] + _SKIP_HINT if len(bad) else None
    skipped: dict[str, int] = {}
    late: list[int] = []
    for i, (reason, _) in batch.bad.reasons.items():
        skipped[reason] = skipped.get(reason, 0) + 1
        if split[i] == run.train_index and start + i not in unfit:
            late.append(start + i)
    return BatchOut(pa.table(cols), ~batch.bad.mask, skipped, late, error)


def _write_splits(
    run: Run, state: dict[str, Any], out: str | Path, unfit: set[int]
) -> PreprocessResult | set[int]:
    """Pass 2: transform and write each split; or, when train rows that the state was fitted
    on turn out bad here (an image that does not decode), write nothing and return their
    snapshot row numbers (`unfit`: the rows the state was not fitted on)."""
    manifest, split_names = run.manifest, run.split_names
    transforms = [f.transformer(state.get(f.name)) for f in run.features]
    skipped: dict[str, int] = dict(manifest.skipped)
    counts = dict.fromkeys(split_names, 0)
    late: set[int] = set()
    start = 0
    try:
        with atomic_dir(out) as tmp:
            writers: dict[str, SplitWriter] = {}
            schema: pa.Schema | None = None
            for table, split in run.batches():
                part = transform_batch(run, transforms, table, split, start, unfit)
                if part.error is not None and run.on_error == "fail":
                    raise DatasetError(part.error)
                for reason, n in part.skipped.items():
                    skipped[reason] = skipped.get(reason, 0) + n
                late.update(part.late)
                start += table.num_rows
                if late:
                    continue  # the state must be refitted first: only find every such row
                result = part.table
                if schema is None:
                    schema = result.schema
                # a part is cast to the first batch's schema only when its own differs (an
                # identity cast of every part costs ~1% of the pass); after the filter, so
                # bad rows are never cast
                same = result.schema.equals(schema, check_metadata=True)
                keep = part.keep
                for si, name in enumerate(split_names):
                    sel = keep & (split == si)
                    if not sel.any():
                        continue
                    part = result.filter(pa.array(sel))
                    if not same:
                        part = part.cast(schema)
                    if name not in writers:
                        writers[name] = SplitWriter(tmp, name, schema, run.params.batch_rows)
                    writers[name].write(part)
                    counts[name] += part.num_rows
            if late:
                for w in writers.values():
                    w.close()
                raise _Refit(late)
            for name in split_names:
                if name not in writers:
                    if schema is None:
                        raise DatasetError("preprocess produced no rows")
                    writers[name] = SplitWriter(tmp, name, schema, run.params.batch_rows)
                writers[name].close()
            write_state(tmp, run, state, transforms, counts, skipped)
    except _Refit as refit:  # atomic_dir removed what was written
        return refit.rows
    return PreprocessResult(
        out=Path(out), num_examples=counts, skipped=dict(sorted(skipped.items()))
    )


def write_state(
    directory: Path,
    run: Run,
    state: dict[str, Any],
    transforms: list[Transform],
    counts: dict[str, int],
    skipped: dict[str, int],
) -> None:
    """`state.json`: the stored features, the fitted state, the rows written and skipped."""
    manifest = run.manifest
    PreprocessState(
        features=[info for t in transforms for info in t.infos()],
        state=state,
        splits=[SplitCount(name=n, num_examples=c) for n, c in counts.items()],
        skipped=dict(sorted(skipped.items())),
        inputs_fingerprint=manifest.fingerprint,
        inputs=manifest.sources,
        params=StateParams(ingest=manifest.params, preprocess=run.params.model_dump(mode="json")),
    ).write(directory / STATE_FILE)


_ROW_GROUP_BYTES = 2 << 20
_ROW_GROUP_MAX_ROWS = 1 << 20


class SplitWriter:
    """`<split>.parquet` in row groups of exactly `rows` rows (the last one shorter): a
    multiple of `batch_rows` near 2 MiB of Arrow data (at most 1Mi rows, at least one batch),
    set by the split's first `batch_rows` rows. The Parquet writer keeps every row group's
    metadata (~2.6 KB for three columns) until it closes, so the number of row groups is what
    grows with the input: written as they came (a 10% split gets ~410 rows of each batch), 20M
    rows made 15k row groups and +60 MiB of peak RSS. Only `batch_rows` and the data decide
    the layout, so the bytes stay deterministic."""

    def __init__(self, directory: Path, split: str, schema: pa.Schema, batch_rows: int) -> None:
        self.writer = pq.ParquetWriter(
            directory / f"{split}.parquet", schema, compression="zstd", use_dictionary=False
        )
        self.batch_rows = batch_rows
        self.rows = 0  # set at the first batch_rows rows
        self.pending: list[pa.Table] = []
        self.n_pending = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.n_pending += table.num_rows
        if not self.rows and self.n_pending >= self.batch_rows:
            first = pa.concat_tables(self.pending).slice(0, self.batch_rows)
            per_batch = max(1, first.nbytes)
            most = max(1, _ROW_GROUP_MAX_ROWS // self.batch_rows)
            self.rows = self.batch_rows * max(1, min(most, _ROW_GROUP_BYTES // per_batch))
        if self.rows and self.n_pending >= self.rows:
            whole = pa.concat_tables(self.pending)
            full = whole.num_rows - whole.num_rows % self.rows
            self.writer.write_table(whole.slice(0, full).combine_chunks(), self.rows)
            rest = whole.slice(full)
            self.pending, self.n_pending = [rest], rest.num_rows

    def close(self) -> None:
        if self.n_pending:
            whole = pa.concat_tables(self.pending).combine_chunks()
            self.writer.write_table(whole, self.rows or self.batch_rows)
        self.pending, self.n_pending = [], 0
        self.writer.close()


def read_state(directory: str | Path) -> PreprocessState:
    """`<directory>/state.json`, validated."""
    return PreprocessState.read(Path(directory) / STATE_FILE)
