"""One source, streamed: each batch written as it is read, with a check that no key repeats (a
64-bit hash of every key, spilled to disk past `_KEY_BUFFER` bytes)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.config import IngestParams, OnError
from dataops.stages.snapshot import (
    Joined,
    OutWriter,
    Progress,
    check_columns,
    key_hash,
    one_source_accounts,
    row_column,
    shapes_of,
    ticker,
)
from dataops.stages.sources import read_source
from dataops.stages.sources.base import KEYLESS_COLUMN, RowErrors, Source

_KEY_BUFFER = 16 << 20  # bytes of key hashes held before they are spilled (one source)
_KEY_PARTS = 256  # spill files of key hashes, by the hash's top byte


def stream_one(
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
    keys = KeySet(scratch / "keys") if src.keyless_prefix is None else None  # keyless: unique
    owners: dict[str, str] = {}
    shapes: dict[str, list[int]] = {}
    out = OutWriter(snapshot, params.batch_rows, key_name, shapes)
    tick = ticker(src, progress)
    good = 0
    unique = True
    with Background(out.write) as writer:
        for batch in read_source(src, params.batch_rows, errors):
            table = batch.table
            tick(table.num_rows)
            check_columns(table, src, key_name, owners)
            new_shapes = shapes_of(table)
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
    if unique and keys is not None and errors.keyed:
        # bad rows after the last batch (a reader's last chunk with no good row)
        unique = keys.add(key_hash(pa.array([b.key for b in errors.keyed], pa.string())))
    if unique and keys is not None:
        unique = keys.check()
    if not unique:
        out.remove()
        return None
    num_rows = out.close()
    return Joined(num_rows, one_source_accounts(src, good, num_rows, errors.counts), owners, shapes)


class Background:
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

    def __enter__(self) -> Background:
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


class KeySet:
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
