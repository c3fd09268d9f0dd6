"""The general join of several sources on the key (a grace hash join over `partitions`): first
occurrences kept, keys bad or missing anywhere dropped and counted, the first source's order."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import IngestParams, OnError
from dataops.errors import DatasetError
from dataops.stages.partitions import Scratch, merge_by_seq
from dataops.stages.snapshot import (
    SEQ,
    Accounts,
    Joined,
    OutWriter,
    Progress,
    check_columns,
    row_column,
    shapes_of,
    ticker,
)
from dataops.stages.sources import input_bytes, read_source
from dataops.stages.sources.base import KEYLESS_COLUMN, BadRow, RowErrors, Source

_BAD = "__bad"

_MAX_DEPTH = 3
_MAX_PARTS = 64  # top-level partitions (like the joiner's re-split fan-out)
_MIN_SPLIT_BYTES = 1 << 20  # a partition smaller than this is never split again


def join_all(
    sources: list[Source],
    params: IngestParams,
    on_error: OnError,
    snapshot: Path,
    scratch: Path,
    progress: Progress | None,
) -> Joined:
    """The general join: every source hash-partitioned on the key (in memory when the inputs
    are smaller than partition_bytes), each partition joined, the result merged back into the
    first source's order."""
    key_name = params.key if params.key is not None else KEYLESS_COLUMN
    total_bytes = sum(input_bytes(s) for s in sources)
    # at most _MAX_PARTS files open per source: a partition larger than partition_bytes is
    # split again on disk by the joiner, so memory stays bounded and no fd limit is reached
    parts = min(_MAX_PARTS, max(1, math.ceil(total_bytes / params.partition_bytes)))
    acct = Accounts([s.name for s in sources])
    store = Scratch(
        scratch / "parts",
        parts,
        memory=parts == 1,
        memory_limit=params.partition_bytes,
    )
    owners: dict[str, str] = {}
    shapes: dict[str, list[int]] = {}
    for si, src in enumerate(sources):
        errors = RowErrors(on_error)
        good = 0
        tick = ticker(src, progress)
        for batch in read_source(src, params.batch_rows, errors):
            table = batch.table
            tick(table.num_rows)
            check_columns(table, src, key_name, owners)
            shapes.update(shapes_of(table))
            table = table.replace_schema_metadata(None)
            table = table.append_column(row_column(src.name), batch.rows)
            table = table.append_column(SEQ, pa.array(batch.seqs, pa.int64()))
            good += table.num_rows
            store.add(si, "good", table)
            if errors.keyed:
                store.add(si, "bad", _bad_table(errors.keyed, src))
                errors.keyed = []
        if errors.keyed:  # bad rows after the last batch (a last chunk with no good row)
            store.add(si, "bad", _bad_table(errors.keyed, src))
            errors.keyed = []
        acct.read[src.name] = good + sum(errors.counts.values())
        for reason, n in errors.counts.items():
            acct.skip(src.name, reason, n)
        for reason, n in errors.unkeyed.items():
            acct.lost(reason, n)
        store.close()  # this source's partition files: open files stay <= 2 x parts

    out_writer = OutWriter(snapshot, params.batch_rows, key_name, shapes)
    joiner = _Joiner(sources, on_error, acct, params.partition_bytes, scratch)
    if store.memory:
        for joined in joiner.join(store, 0, depth=0):
            out_writer.write(joined)
    else:
        for p in range(store.parts):
            for joined in joiner.join(store, p, depth=0):
                joiner.spill(joined, params.batch_rows)
        for table in merge_by_seq(joiner.spilled, params.batch_rows):
            out_writer.write(table)
    return Joined(out_writer.close(), acct, owners, shapes)


class _Joiner:
    """Joins partitions one at a time; a partition larger than `partition_bytes` on disk is
    split again (up to `_MAX_DEPTH` times) so the join's memory stays bounded."""

    def __init__(
        self,
        sources: list[Source],
        on_error: OnError,
        acct: Accounts,
        partition_bytes: int,
        scratch: Path,
    ) -> None:
        self.sources = sources
        self.on_error = on_error
        self.acct = acct
        self.partition_bytes = partition_bytes
        self.scratch = scratch
        self.spilled: list[Path] = []

    def join(self, store: Scratch, p: int, depth: int) -> Iterator[pa.Table]:
        n = len(self.sources)
        if not store.memory and depth < _MAX_DEPTH:
            size = store.size(p, n)
            if size > max(self.partition_bytes, _MIN_SPLIT_BYTES):
                k = min(64, max(2, math.ceil(size / self.partition_bytes)))
                sub = store.split(p, n, k)
                for q in range(k):
                    yield from self.join(sub, q, depth + 1)
                return
        joined = _join_partition(
            [store.load(si, "good", p) for si in range(n)],
            [store.load(si, "bad", p) for si in range(n)],
            self.sources,
            self.on_error,
            self.acct,
        )
        if joined is not None and joined.num_rows:
            self.acct.written += joined.num_rows
            yield joined

    def spill(self, joined: pa.Table, batch_rows: int) -> None:
        path = self.scratch / f"joined-{len(self.spilled)}.arrow"
        step = max(64, batch_rows // 8)
        with pa.ipc.new_file(str(path), joined.schema) as w:
            for b in joined.to_batches(max_chunksize=step):
                w.write_batch(b)
        self.spilled.append(path)


def _bad_table(bad: list[BadRow], src: Source) -> pa.Table:
    return pa.table(
        {
            "__key": pa.array([b.key for b in bad], pa.string()),
            SEQ: pa.array([b.seq for b in bad], pa.int64()),
            _BAD: pa.array([b.reason for b in bad], pa.string()),
            row_column(src.name): pa.array([b.label for b in bad], pa.string()),
        }
    )


def _first_rows(
    good: pa.Table | None, bad: pa.Table | None
) -> tuple[pa.Table | None, pa.Table | None, pa.Table | None, pa.Table | None]:
    """Split a source's rows in one partition by first occurrence of their key (lowest record
    index): (good firsts, bad firsts, good repeats, bad repeats)."""
    tables = [t for t in (good, bad) if t is not None and t.num_rows]
    if not tables:
        return None, None, None, None
    total = sum(t.num_rows for t in tables)
    if pc.count_distinct(_concat([t.column("__key") for t in tables])).as_py() == total:
        return good, bad, None, None  # no repeated key (the usual case)
    n_good = good.num_rows if good is not None else 0
    keys = _concat([t.column("__key") for t in tables]).combine_chunks()
    seqs = np.concatenate([t.column(SEQ).to_numpy() for t in tables])
    codes = pc.dictionary_encode(keys).indices.to_numpy()
    order = np.lexsort((seqs, codes))
    first = np.zeros(len(keys), dtype=bool)
    sc = codes[order]
    first[order[np.r_[True, sc[1:] != sc[:-1]]]] = True
    if first.all():
        return good, bad, None, None
    g_first, b_first = first[:n_good], first[n_good:]

    def part(t: pa.Table | None, mask: np.ndarray) -> pa.Table | None:
        if t is None or not mask.any():
            return None
        return t.filter(pa.array(mask))

    return (
        part(good, g_first),
        part(bad, b_first),
        part(good, ~g_first),
        part(bad, ~b_first),
    )


def _join_partition(
    goods: list[pa.Table | None],
    bads: list[pa.Table | None],
    sources: list[Source],
    on_error: OnError,
    acct: Accounts,
) -> pa.Table | None:
    """Join one partition: first occurrences only, keys bad or missing anywhere dropped (and
    counted), the result in the first source's order (`__seq` ascending)."""
    firsts: list[pa.Table | None] = []
    bad_firsts: list[pa.Table | None] = []
    for src, g, b in zip(sources, goods, bads, strict=True):
        gf, bf, g_rep, b_rep = _first_rows(g, b)
        if g_rep is not None:
            if on_error == "fail":
                _fail_duplicate(src, g_rep, gf, bf)
            acct.skip(src.name, "duplicate_key", g_rep.num_rows)
            acct.lost("duplicate_key", g_rep.num_rows)
        if b_rep is not None:  # counted by their own reason in the source already
            for reason, n in _reason_counts(b_rep).items():
                acct.lost(reason, n)
        firsts.append(gf)
        bad_firsts.append(bf)
    key_sets = [t.column("__key") if t is not None else pa.array([], pa.string()) for t in firsts]
    bad_sets = [
        t.column("__key") if t is not None else pa.array([], pa.string()) for t in bad_firsts
    ]
    universe = pc.unique(_concat([*key_sets, *bad_sets]).combine_chunks())
    n = len(universe)
    if n and all(not len(b) for b in bad_sets) and all(len(k) == n for k in key_sets):
        # every key is in every source, none bad (the usual case)
        return _gather(firsts)  # type: ignore[arg-type]
    # the reason each key is lost: the first source where its first row is bad, else the first
    # source that has no row for it
    lost_src = np.full(n, -1, dtype=np.int64)
    lost_bad = np.zeros(n, dtype=bool)
    reasons = np.empty(n, dtype=object)
    for si, bset in enumerate(bad_sets):
        if not len(bset):
            continue
        pos_i = _positions(universe, bset)
        new = (pos_i >= 0) & (lost_src < 0)
        lost_src[new] = si
        lost_bad[new] = True
        col = bad_firsts[si].column(_BAD).to_pylist()  # type: ignore[union-attr]
        for i in np.flatnonzero(new):
            reasons[i] = col[pos_i[i]]
    for si, kset in enumerate(key_sets):
        have = pc.is_in(universe, value_set=kset).to_numpy(zero_copy_only=False)
        new = ~have & (lost_src < 0)
        if new.any() and on_error == "fail":
            _fail_missing(universe[int(np.flatnonzero(new)[0])].as_py(), si, sources, firsts)
        lost_src[new] = si
        reasons[new] = f"missing_in_{sources[si].name}"
    for r, cnt in zip(
        *np.unique(reasons[lost_src >= 0].astype(str), return_counts=True), strict=True
    ):
        acct.lost(str(r), int(cnt))
    lost_keys = universe.filter(pa.array(lost_src >= 0))
    # per source: each good first row whose key is lost elsewhere
    lost_names = [
        ("bad_in_" if lost_bad[i] else "missing_in_") + sources[lost_src[i]].name
        for i in np.flatnonzero(lost_src >= 0)
    ]
    for src, t in zip(sources, firsts, strict=True):
        if t is None or not len(lost_keys):
            continue
        pos = _positions(t.column("__key"), lost_keys)
        for r, cnt in zip(
            *np.unique(
                np.asarray(lost_names, dtype=object)[pos[pos >= 0]].astype(str), return_counts=True
            ),
            strict=True,
        ):
            acct.skip(src.name, str(r), int(cnt))
    primary = firsts[0]
    if primary is None or not all(t is not None for t in firsts):
        return None
    if len(lost_keys):
        primary = primary.filter(pc.invert(pc.is_in(primary.column("__key"), value_set=lost_keys)))
    if primary.num_rows == 0:
        return None
    firsts = [primary, *firsts[1:]]
    return _gather(firsts)  # type: ignore[arg-type]


def _gather(firsts: list[pa.Table]) -> pa.Table:
    """The first source's rows in record order, each other source's columns gathered by key."""
    primary = firsts[0]
    seq = primary.column(SEQ).to_numpy()
    if len(seq) > 1 and not bool(np.all(seq[1:] > seq[:-1])):
        primary = primary.sort_by(SEQ)
    seq_col = primary.column(SEQ)
    result = primary.drop_columns([SEQ])
    for t in firsts[1:]:
        # A gather by key position (Acero's join does not carry list columns).
        pos = pc.index_in(result.column("__key"), value_set=t.column("__key").combine_chunks())
        matched = t.take(pos).drop_columns(["__key", SEQ])
        for name in matched.column_names:
            result = result.append_column(name, matched.column(name))
    return result.append_column(SEQ, seq_col)


def _concat(columns: list[Any]) -> pa.ChunkedArray:
    """String columns (arrays or chunked arrays) as one chunked array, without copying."""
    chunks: list[pa.Array] = []
    for c in columns:
        chunks.extend(c.chunks if isinstance(c, pa.ChunkedArray) else [c])
    return pa.chunked_array(chunks, pa.string())


def _positions(values: Any, value_set: Any) -> np.ndarray:
    """Index of each value in `value_set` (its first occurrence), -1 where absent."""
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    pos = pc.fill_null(pc.index_in(values, value_set=value_set), -1)
    return np.asarray(pos.to_numpy(zero_copy_only=False), dtype=np.int64)


def _reason_counts(t: pa.Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in t.column(_BAD).to_pylist():
        out[r] = out.get(r, 0) + 1
    return out


def _fail_duplicate(
    src: Source, repeats: pa.Table, good: pa.Table | None, bad: pa.Table | None
) -> None:
    first_rep = repeats.sort_by(SEQ).slice(0, 1).to_pylist()[0]
    key = first_rep["__key"]
    where = "?"
    for t in (good, bad):
        if t is None:
            continue
        hit = t.filter(pc.equal(t.column("__key"), key))
        if hit.num_rows:
            where = hit.column(row_column(src.name))[0].as_py()
    raise DatasetError(
        f"{src.label}: {first_rep[row_column(src.name)]}: key {key!r} repeats {where} "
        f"(key column '{src.key}' must be unique; set dataset.on_error: skip to keep the first and count the others)"
    )


def _fail_missing(key: str, si: int, sources: list[Source], firsts: list[pa.Table | None]) -> None:
    src = sources[si]
    for other, t in zip(sources, firsts, strict=True):
        if t is None:
            continue
        hit = t.filter(pc.equal(t.column("__key"), key))
        if hit.num_rows:
            row = hit.column(row_column(other.name))[0].as_py()
            raise DatasetError(
                f"source '{src.name}' ({src.label}) has no row for key {key!r} ({other.label}: {row})"
                " (set dataset.on_error: skip to drop such rows and count them)"
            )
    raise DatasetError(f"source '{src.name}' ({src.label}) has no row for key {key!r}")
