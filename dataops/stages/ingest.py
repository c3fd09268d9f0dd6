"""Stage 1, ingest: read the declared sources, join them on the key, write a Parquet snapshot.
Over 400 lines: the grace hash join (spill partitions, re-split, merge by sequence, join) shares its scratch files and row accounts; left whole while another branch reworks it.

One source (the usual case) is streamed: each batch is written to the snapshot as it is read
(CSV in 8 MiB chunks; the Parquet encoding runs in a second thread), while a 64-bit hash of
every key is kept (spilled to disk past 16 MiB) to check that no key repeats. Memory does not
depend on the input's size (bench: 325 / 340 MiB peak for 0.13 / 1.07 GB of CSV). If a hash
repeats — a repeated key, or a collision — the general join below runs instead; it gives the
same bytes the streamed path gives whenever no key repeats (tested), so a collision costs only
time.

Several sources are joined: sources are read in batches; when the inputs are larger than
`ingest.partition_bytes` (input bytes, or Arrow bytes once read) they are hash-partitioned on
the key (64-bit FNV-1a) into temporary Arrow IPC files, a partition still larger than that is
split again, and each partition is joined on its own (a grace hash join). The joined
partitions are then merged back into the order of the first source, so the snapshot's bytes
do not depend on the partitioning. Peak memory is about 3 x partition_bytes plus a constant.

Keyless (`ingest.key: null`): each row's key is `<first source name>:<record index>`, the
index counting from 0 every record of its source (bad ones too, blank lines not); every source
is matched by that index.

Counts reconcile: every row read from a source is either joined or skipped with one reason,
per source (`counts.sources`), and every candidate example (a distinct key, an extra row with a
repeated key, or a bad row whose key cannot be read) is either written or skipped once, with
the first real reason (`counts.examples`, also the manifest's `skipped`). See `_Accounts`.
"""

from __future__ import annotations

import json
import math
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataops.artifacts import Manifest
from dataops.config import IngestParams, OnError
from dataops.errors import DatasetError
from dataops.fsutil import atomic_dir, fingerprint
from dataops.stages.sources import input_bytes, input_files, manifest_entry, read_source
from dataops.stages.sources.base import KEYLESS_COLUMN, BadRow, RowErrors, Source
from dataops.stages.sources.paths import resolve_source

SNAPSHOT_FILE = "snapshot.parquet"
MANIFEST_FILE = "manifest.json"
_SEQ = "__seq"
_BAD = "__bad"
# Scratch buffers are flushed to their partition files when they hold this many bytes in all.
_BUFFER_BYTES = 32 << 20
_MAX_DEPTH = 3
_MAX_PARTS = 64  # top-level partitions (like the joiner's re-split fan-out)
_MIN_SPLIT_BYTES = 1 << 20  # a partition smaller than this is never split again
_KEY_BUFFER = 16 << 20  # bytes of key hashes held before they are spilled (one source)
_KEY_PARTS = 256  # spill files of key hashes, by the hash's top byte


def row_column(source: str) -> str:
    """Snapshot column holding, per row, where the row came from in that source's file."""
    return f"__row.{source}"


@dataclass(frozen=True)
class IngestResult:
    out: Path
    num_rows: int
    skipped: dict[str, int]
    inputs_fingerprint: str


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def key_hash(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit FNV-1a of each key's UTF-8 bytes (vectorized over the keys, one step per byte
    position); the same on every machine, run and library version."""
    arr = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    arr = arr.cast(pa.string())
    n = len(arr)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int32, count=arr.offset + n + 1)[arr.offset :]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max(initial=0))):
            live = np.flatnonzero(lengths > j) if j else np.arange(n)
            h[live] = (h[live] ^ data[starts[live] + j].astype(np.uint64)) * _FNV_PRIME
    return h


def partition_of(keys: pa.Array | pa.ChunkedArray, parts: int, divisor: int = 1) -> np.ndarray:
    """Partition of each key: `(key_hash // divisor) % parts`."""
    h = key_hash(keys)
    return ((h // np.uint64(divisor)) % np.uint64(parts)).astype(np.int64)


def _shapes_of(table: pa.Table) -> dict[str, list[int]]:
    meta = table.schema.metadata or {}
    raw = meta.get(b"dataops.shapes")
    return json.loads(raw) if raw else {}


class _Scratch:
    """Per (source, kind, partition) tables: in memory while they hold at most `memory_limit`
    bytes (then they move to disk in `parts` partitions, at least 2), otherwise buffered (all
    buffers together up to _BUFFER_BYTES) and appended to Arrow IPC files. Partition of a key:
    `(key_hash // divisor) % parts`."""

    def __init__(
        self,
        directory: Path,
        parts: int,
        divisor: int = 1,
        memory: bool = False,
        memory_limit: int = 0,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.parts = parts
        self.divisor = divisor
        self.memory = memory
        self.memory_limit = memory_limit
        self.held = 0  # bytes held in memory mode
        self.buffers: dict[tuple[int, str, int], list[pa.Table]] = {}
        self.buffered = 0
        self.writers: dict[tuple[int, str, int], Any] = {}

    def path(self, si: int, kind: str, p: int) -> Path:
        return self.dir / f"s{si}-{kind}-p{p}.arrow"

    def add(self, si: int, kind: str, table: pa.Table) -> None:
        if self.memory:
            self.buffers.setdefault((si, kind, 0), []).append(table)
            self.held += table.nbytes
            if self.held > self.memory_limit:
                self._to_disk()
            return
        pids = partition_of(table.column("__key"), self.parts, self.divisor)
        order = np.argsort(pids, kind="stable")
        sorted_pids = pids[order]
        bounds = np.flatnonzero(np.diff(sorted_pids)) + 1
        table = table.take(pa.array(order))
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(order)], strict=True):
            piece = table.slice(int(lo), int(hi - lo))
            self.buffers.setdefault((si, kind, int(sorted_pids[lo])), []).append(piece)
            self.buffered += piece.nbytes
        if self.buffered > _BUFFER_BYTES:
            self.flush()

    def _to_disk(self) -> None:
        held = sorted(self.buffers.items())
        self.memory, self.buffers, self.held = False, {}, 0
        self.parts = max(2, self.parts)
        for (si, kind, _), tables in held:
            for t in tables:
                self.add(si, kind, t)

    def flush(self) -> None:
        if self.memory:
            return
        for k, pieces in self.buffers.items():
            if not pieces:
                continue
            t = pa.concat_tables(pieces).combine_chunks()
            if k not in self.writers:
                self.writers[k] = pa.ipc.new_file(str(self.path(*k)), t.schema)
            self.writers[k].write_table(t)
        self.buffers = {}
        self.buffered = 0

    def close(self) -> None:
        self.flush()
        for w in self.writers.values():
            w.close()
        self.writers = {}

    def size(self, p: int, sources: int) -> int:
        """Bytes of partition `p` on disk (Arrow IPC, uncompressed: about its memory)."""
        return sum(
            self.path(si, kind, p).stat().st_size
            for si in range(sources)
            for kind in ("good", "bad")
            if self.path(si, kind, p).exists()
        )

    def load(self, si: int, kind: str, p: int) -> pa.Table | None:
        if self.memory:
            pieces = self.buffers.pop((si, kind, p), None)
            return pa.concat_tables(pieces) if pieces else None
        path = self.path(si, kind, p)
        if not path.exists():
            return None
        with pa.OSFile(str(path)) as f:
            return pa.ipc.open_file(f).read_all()

    def split(self, p: int, sources: int, parts: int) -> _Scratch:
        """Partition `p` split again into `parts` (streamed), its files removed."""
        sub = _Scratch(self.dir / f"p{p}", parts, self.divisor * self.parts)
        for si in range(sources):
            for kind in ("good", "bad"):
                path = self.path(si, kind, p)
                if not path.exists():
                    continue
                with pa.OSFile(str(path)) as f:
                    reader = pa.ipc.open_file(f)
                    for i in range(reader.num_record_batches):
                        sub.add(si, kind, pa.Table.from_batches([reader.get_batch(i)]))
                sub.flush()
                path.unlink()
        sub.close()
        return sub


@dataclass
class _Accounts:
    """Row counts: per source (rows read = rows joined + rows skipped by reason) and per
    candidate example (examples read = examples written + examples skipped by reason)."""

    names: list[str]
    read: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    examples_skipped: dict[str, int] = field(default_factory=dict)
    written: int = 0

    def skip(self, source: str, reason: str, n: int = 1) -> None:
        if n:
            d = self.skipped.setdefault(source, {})
            d[reason] = d.get(reason, 0) + n

    def lost(self, reason: str, n: int = 1) -> None:
        if n:
            self.examples_skipped[reason] = self.examples_skipped.get(reason, 0) + n

    def report(self) -> dict[str, Any]:
        sources = {}
        for name in self.names:
            sk = dict(sorted(self.skipped.get(name, {}).items()))
            read = self.read.get(name, 0)
            if read != self.written + sum(sk.values()):
                raise DatasetError(
                    f"ingest: source '{name}': {read} rows read but {self.written} joined + "
                    f"{sum(sk.values())} skipped (internal accounting error)"
                )
            sources[name] = {"rows_read": read, "rows_joined": self.written, "rows_skipped": sk}
        ex = dict(sorted(self.examples_skipped.items()))
        return {
            "examples": {
                "read": self.written + sum(ex.values()),
                "written": self.written,
                "skipped": ex,
            },
            "sources": sources,
        }


Progress = Callable[[str, int | None, str], Callable[[int], None]]


@dataclass
class Joined:
    """What reading and joining the sources gave: the snapshot's rows, the counts, and which
    source each column came from."""

    num_rows: int
    acct: _Accounts
    owners: dict[str, str]
    shapes: dict[str, list[int]]


def run_ingest(
    params: IngestParams,
    root: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    progress: Progress | None = None,
) -> IngestResult:
    """Join the sources of `params` into `out/snapshot.parquet` plus `out/manifest.json`."""
    root = Path(root)
    sources = [resolve_source(params, root, i) for i in range(len(params.sources))]
    inputs = _input_entries(sources, root)
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(prefix="dataops-ingest-") as scratch:
        snapshot = tmp / SNAPSHOT_FILE
        joined = None
        if len(sources) == 1:
            joined = _stream_one(sources[0], params, on_error, snapshot, Path(scratch), progress)
        if joined is None:
            joined = _join_all(sources, params, on_error, snapshot, Path(scratch), progress)
        result = write_manifest(tmp, params, inputs(), joined)
    return replace(result, out=Path(out))


def _input_entries(sources: list[Source], root: Path) -> Callable[[], dict[str, Any]]:
    """The manifest's `sources` (a sha256 of every input file), computed in a daemon thread
    while the sources are read (hashlib releases the GIL; the reading thread waits for the
    Parquet writer part of the time anyway); the returned function waits for them. Image
    folders are listed and hashed first, here: their listing may refuse the source (a file
    outside the project) before any row is read."""
    if any(s.params.format == "image_folder" for s in sources):
        entries = {s.name: manifest_entry(s, root) for s in sources}
        return lambda: entries
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["entries"] = {s.name: manifest_entry(s, root) for s in sources}
        except BaseException as err:  # raised again by `result`
            box["error"] = err

    thread = threading.Thread(target=run, name="dataops-ingest-sha256", daemon=True)
    thread.start()

    def result() -> dict[str, Any]:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["entries"]

    return result


def write_manifest(
    tmp: Path, params: IngestParams, inputs: dict[str, Any], joined: Joined
) -> IngestResult:
    """`tmp/manifest.json` for a snapshot written into `tmp` (every driver's last step)."""
    if joined.num_rows == 0:
        raise DatasetError(
            "ingest produced no rows: every source is empty or every row was skipped"
        )
    counts = joined.acct.report()
    skipped = counts["examples"]["skipped"]
    manifest = Manifest.model_validate(
        {
            "params": params.recorded(),
            "key": params.key if params.key is not None else KEYLESS_COLUMN,
            "num_rows": joined.num_rows,
            "columns": {c: joined.owners[c] for c in sorted(joined.owners)},
            "shapes": joined.shapes,
            "skipped": skipped,
            "counts": counts,
            "sources": inputs,
            "fingerprint": fingerprint(inputs),
        }
    )
    manifest.write(tmp / MANIFEST_FILE)
    return IngestResult(
        out=tmp,
        num_rows=joined.num_rows,
        skipped=skipped,
        inputs_fingerprint=manifest.fingerprint,
    )


def _ticker(src: Source, progress: Progress | None) -> Callable[[int], None]:
    if progress is None:
        return lambda n: None
    images = len(input_files(src)) if src.params.format == "image_folder" else None
    return progress(f"ingest {src.name}", images, "rows")


def check_columns(table: pa.Table, src: Source, key_name: str, owners: dict[str, str]) -> None:
    for col in table.column_names[1:]:
        if col == key_name:
            raise DatasetError(
                f"{src.label}: column '{col}' has the name of the key; rename it or select other columns"
            )
        prev = owners.setdefault(col, src.name)
        if prev != src.name:
            raise DatasetError(
                f"column '{col}' appears in sources '{prev}' and '{src.name}'; select columns to avoid the clash"
            )


def _stream_one(
    src: Source,
    params: IngestParams,
    on_error: OnError,
    snapshot: Path,
    scratch: Path,
    progress: Progress | None,
) -> Joined | None:
    """One source, streamed: each batch is written to the snapshot as it is read, so memory
    does not depend on the input's size. With one source the join only has to drop repeated
    keys, so this path assumes there are none and checks it on the way (a 64-bit hash of every
    key, good or bad, spilled to disk beyond `_KEY_BUFFER` bytes). If a hash repeats (a repeated
    key, or a hash collision) it returns None, and the caller runs the general join instead,
    which gives the same bytes and counts as this path would whenever no key repeats."""
    key_name = params.key if params.key is not None else KEYLESS_COLUMN
    errors = RowErrors(on_error)
    keys = _KeySet(scratch / "keys") if src.keyless_prefix is None else None  # keyless: unique
    owners: dict[str, str] = {}
    shapes: dict[str, list[int]] = {}
    out = _OutWriter(snapshot, params.batch_rows, key_name, shapes)
    tick = _ticker(src, progress)
    good = 0
    unique = True
    with _Background(out.write) as writer:
        for batch in read_source(src, params.batch_rows, errors):
            table = batch.table
            tick(table.num_rows)
            check_columns(table, src, key_name, owners)
            new_shapes = _shapes_of(table)
            if not good:
                shapes.update(new_shapes)  # read by the writer thread once it has rows
            elif {**shapes, **new_shapes} != shapes:
                unique = False  # written with other shapes already (never seen: they are per file)
                break
            if keys is not None:
                unique = keys.add(key_hash(table.column("__key")))
                if errors.keyed:
                    bad = pa.array([b.key for b in errors.keyed], pa.string())
                    unique = keys.add(key_hash(bad)) and unique
            errors.keyed = []
            if not unique:
                break
            table = table.replace_schema_metadata(None)
            writer.put(table.append_column(row_column(src.name), batch.rows))
            good += table.num_rows
    if unique and keys is not None:
        unique = keys.check()
    num_rows = out.close()
    if not unique:
        snapshot.unlink(missing_ok=True)
        return None
    return Joined(num_rows, one_source_accounts(src, good, num_rows, errors.counts), owners, shapes)


def one_source_accounts(src: Source, good: int, written: int, bad: dict[str, int]) -> _Accounts:
    """The counts of one source whose keys do not repeat: every row read is written (`good`
    of them) or bad, and every bad row is one example skipped for its reason."""
    acct = _Accounts([src.name])
    acct.read[src.name] = good + sum(bad.values())
    acct.written = written
    for reason, n in bad.items():
        acct.skip(src.name, reason, n)
        acct.lost(reason, n)
    return acct


class _Background:
    """`fn(item)` for each item put, in order, in one thread, while the caller goes on: Arrow
    releases the GIL while it encodes Parquet and parses CSV, so on two cores the write of one
    batch overlaps the read of the next. At most `depth` items wait (bounded memory). An error
    in the thread is raised in the caller by the next `put` or on leaving the `with`; leaving
    it on an error of the caller's lets the thread finish what is queued and stop."""

    _STOP = object()

    def __init__(self, fn: Callable[[Any], None], depth: int = 2) -> None:
        self.fn = fn
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="dataops-ingest-write", daemon=True)

    def __enter__(self) -> _Background:
        self.thread.start()
        return self

    def _run(self) -> None:
        while (item := self.queue.get()) is not self._STOP:
            if self.error is None:
                try:
                    self.fn(item)
                except BaseException as err:  # raised again in the caller
                    self.error = err

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def __exit__(self, *exc: object) -> None:
        self.queue.put(self._STOP)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _join_all(
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
    acct = _Accounts([s.name for s in sources])
    store = _Scratch(
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
        tick = _ticker(src, progress)
        for batch in read_source(src, params.batch_rows, errors):
            table = batch.table
            tick(table.num_rows)
            check_columns(table, src, key_name, owners)
            shapes.update(_shapes_of(table))
            table = table.replace_schema_metadata(None)
            table = table.append_column(row_column(src.name), batch.rows)
            table = table.append_column(_SEQ, pa.array(batch.seqs, pa.int64()))
            good += table.num_rows
            store.add(si, "good", table)
            if errors.keyed:
                store.add(si, "bad", _bad_table(errors.keyed, src))
                errors.keyed = []
        acct.read[src.name] = good + sum(errors.counts.values())
        for reason, n in errors.counts.items():
            acct.skip(src.name, reason, n)
        for reason, n in errors.unkeyed.items():
            acct.lost(reason, n)
        store.close()  # this source's partition files: open files stay <= 2 x parts

    out_writer = _OutWriter(snapshot, params.batch_rows, key_name, shapes)
    joiner = _Joiner(sources, on_error, acct, params.partition_bytes, scratch)
    if store.memory:
        for joined in joiner.join(store, 0, depth=0):
            out_writer.write(joined)
    else:
        for p in range(store.parts):
            for joined in joiner.join(store, p, depth=0):
                joiner.spill(joined, params.batch_rows)
        for table in _merge_by_seq(joiner.spilled, params.batch_rows):
            out_writer.write(table)
    return Joined(out_writer.close(), acct, owners, shapes)


class _KeySet:
    """Whether any key repeats, from a 64-bit hash of each: the hashes are held in memory up
    to `_KEY_BUFFER` bytes, then sorted (a repeat within them is found at once) and appended
    to `_KEY_PARTS` files by their top byte; `check` sorts each file on its own. Memory:
    `_KEY_BUFFER` plus one file's hashes (1/256 of 8 bytes per row)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.held: list[np.ndarray] = []
        self.n_held = 0
        self.spilled = False

    def add(self, hashes: np.ndarray) -> bool:
        """Take these hashes; False once a repeat is seen."""
        self.held.append(hashes)
        self.n_held += len(hashes)
        if self.n_held * 8 < _KEY_BUFFER:
            return True
        return self._flush()

    def _flush(self) -> bool:
        h = np.concatenate(self.held) if self.held else np.zeros(0, np.uint64)
        self.held, self.n_held = [], 0
        h.sort()  # in place: the buffer is held twice at most, not three times
        if _repeats(h):
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spilled = True
        cuts = np.searchsorted(h, np.arange(1, _KEY_PARTS, dtype=np.uint64) << np.uint64(56))
        for p, (lo, hi) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, len(h)], strict=True)):
            if hi > lo:
                with open(self.dir / f"k{p}", "ab") as f:
                    h[lo:hi].tofile(f)
        return True

    def check(self) -> bool:
        """True when no hash repeats among all taken."""
        if not self.spilled:
            return not _repeats(np.sort(np.concatenate(self.held))) if self.held else True
        if not self._flush():
            return False
        return not any(
            _repeats(np.sort(np.fromfile(self.dir / f"k{p}", dtype=np.uint64)))
            for p in range(_KEY_PARTS)
            if (self.dir / f"k{p}").exists()
        )


def _repeats(sorted_hashes: np.ndarray) -> bool:
    return bool(len(sorted_hashes) > 1 and (sorted_hashes[1:] == sorted_hashes[:-1]).any())


class _Joiner:
    """Joins partitions one at a time; a partition larger than `partition_bytes` on disk is
    split again (up to `_MAX_DEPTH` times) so the join's memory stays bounded."""

    def __init__(
        self,
        sources: list[Source],
        on_error: OnError,
        acct: _Accounts,
        partition_bytes: int,
        scratch: Path,
    ) -> None:
        self.sources = sources
        self.on_error = on_error
        self.acct = acct
        self.partition_bytes = partition_bytes
        self.scratch = scratch
        self.spilled: list[Path] = []

    def join(self, store: _Scratch, p: int, depth: int) -> Iterator[pa.Table]:
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
            _SEQ: pa.array([b.seq for b in bad], pa.int64()),
            _BAD: pa.array([b.reason for b in bad], pa.string()),
            row_column(src.name): pa.array([b.label for b in bad], pa.string()),
        }
    )


class _OutWriter:
    """The snapshot: row groups of exactly `batch_rows` rows (the last one shorter), whatever
    the sizes of the tables handed in, so the bytes do not depend on the partitioning or on the
    reader's batches. Rows are copied only to join the pieces of a row group that spans two
    tables; whole row groups are written from slices of the table handed in."""

    def __init__(self, path: Path, batch_rows: int, key: str, shapes: dict[str, Any]) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.key = key
        self.shapes = shapes
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.n_pending = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if _SEQ in table.column_names:
            table = table.drop_columns([_SEQ])
        table = table.rename_columns([self.key if c == "__key" else c for c in table.column_names])
        start, n = 0, table.num_rows
        if self.n_pending:
            need = self.batch_rows - self.n_pending
            if n < need:
                self.pending.append(table)
                self.n_pending += n
                return
            self._emit(pa.concat_tables([*self.pending, table.slice(0, need)]))
            self.pending, self.n_pending, start = [], 0, need
        whole = (n - start) // self.batch_rows * self.batch_rows
        if whole:
            self._emit(table.slice(start, whole))
        if start + whole < n:
            self.pending, self.n_pending = [table.slice(start + whole)], n - start - whole

    def _emit(self, table: pa.Table) -> None:
        """Write `table` (a multiple of batch_rows rows, or the last rows) as row groups of
        batch_rows rows; each column in one chunk, so that the page cuts depend only on the
        values."""
        table = table.combine_chunks()
        if self.writer is None:
            schema = table.schema.with_metadata(
                {
                    b"dataops.shapes": json.dumps(self.shapes, sort_keys=True).encode(),
                    b"dataops.key": self.key.encode(),
                }
            )
            self.writer = pq.ParquetWriter(
                self.path, schema, compression="zstd", use_dictionary=False
            )
        self.writer.write_table(
            table.replace_schema_metadata(self.writer.schema.metadata),
            row_group_size=self.batch_rows,
        )
        self.rows += table.num_rows

    def close(self) -> int:
        if self.n_pending:
            self._emit(pa.concat_tables(self.pending))
            self.pending, self.n_pending = [], 0
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return self.rows


def _merge_by_seq(paths: list[Path], window: int) -> Iterator[pa.Table]:
    """The joined partitions (each sorted by `__seq`, in small batches) merged into one
    `__seq` order, streamed.

    The first source's record indices are unique, so the rows with `__seq` in [lo, lo + window)
    from all partitions together are at most `window` rows; each file adds at most one held
    batch: memory stays bounded.
    """
    files = [pa.OSFile(str(p)) for p in paths]
    readers = [pa.ipc.open_file(f) for f in files]
    next_batch = [0] * len(files)
    held: list[pa.Table | None] = [None] * len(files)

    def fill(i: int, upto: int) -> None:
        # make held[i] reach `upto` (or the end of its file)
        while next_batch[i] < readers[i].num_record_batches:
            t = held[i]
            if t is not None and t.num_rows and t.column(_SEQ)[-1].as_py() >= upto:
                return
            nb = pa.Table.from_batches([readers[i].get_batch(next_batch[i])])
            next_batch[i] += 1
            held[i] = nb if t is None or not t.num_rows else pa.concat_tables([t, nb])

    try:
        while True:
            heads = []
            for i in range(len(files)):
                fill(i, 0)
                t = held[i]
                if t is not None and t.num_rows:
                    heads.append(t.column(_SEQ)[0].as_py())
            if not heads:
                return
            hi = min(heads) + window
            pieces = []
            for i in range(len(files)):
                fill(i, hi)
                t = held[i]
                if t is None or not t.num_rows:
                    continue
                cut = int(np.searchsorted(t.column(_SEQ).to_numpy(), hi, side="left"))
                if cut:
                    pieces.append(t.slice(0, cut))
                held[i] = t.slice(cut)
            merged = pa.concat_tables(pieces)
            yield merged.take(pc.sort_indices(merged.column(_SEQ)))
    finally:
        for f in files:
            f.close()


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
    seqs = np.concatenate([t.column(_SEQ).to_numpy() for t in tables])
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
    acct: _Accounts,
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
    seq = primary.column(_SEQ).to_numpy()
    if len(seq) > 1 and not bool(np.all(seq[1:] > seq[:-1])):
        primary = primary.sort_by(_SEQ)
    seq_col = primary.column(_SEQ)
    result = primary.drop_columns([_SEQ])
    for t in firsts[1:]:
        # A gather by key position (Acero's join does not carry list columns).
        pos = pc.index_in(result.column("__key"), value_set=t.column("__key").combine_chunks())
        matched = t.take(pos).drop_columns(["__key", _SEQ])
        for name in matched.column_names:
            result = result.append_column(name, matched.column(name))
    return result.append_column(_SEQ, seq_col)


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
    first_rep = repeats.sort_by(_SEQ).slice(0, 1).to_pylist()[0]
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


def read_manifest(directory: str | Path) -> Manifest:
    """`<directory>/manifest.json`, validated."""
    return Manifest.read(Path(directory) / MANIFEST_FILE)
