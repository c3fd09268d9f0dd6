"""The grace hash join's partitions: every source hash-partitioned on the key into Arrow IPC
files (in memory while small), a partition split again when too large, and the joined
partitions merged back into the first source's record order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.stages.snapshot import SEQ, key_hash

# Scratch buffers are flushed to their partition files when they hold this many bytes in all.
_BUFFER_BYTES = 32 << 20


def partition_of(keys: pa.Array | pa.ChunkedArray, parts: int, divisor: int = 1) -> np.ndarray:
    """Partition of each key: `(key_hash // divisor) % parts`."""
    h = key_hash(keys)
    return ((h // np.uint64(divisor)) % np.uint64(parts)).astype(np.int64)


class Scratch:
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

    def split(self, p: int, sources: int, parts: int) -> Scratch:
        """Partition `p` split again into `parts` (streamed), its files removed."""
        sub = Scratch(self.dir / f"p{p}", parts, self.divisor * self.parts)
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


def merge_by_seq(paths: list[Path], window: int) -> Iterator[pa.Table]:
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
            if t is not None and t.num_rows and t.column(SEQ)[-1].as_py() >= upto:
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
                    heads.append(t.column(SEQ)[0].as_py())
            if not heads:
                return
            hi = min(heads) + window
            pieces = []
            for i in range(len(files)):
                fill(i, hi)
                t = held[i]
                if t is None or not t.num_rows:
                    continue
                cut = int(np.searchsorted(t.column(SEQ).to_numpy(), hi, side="left"))
                if cut:
                    pieces.append(t.slice(0, cut))
                held[i] = t.slice(cut)
            merged = pa.concat_tables(pieces)
            yield merged.take(pc.sort_indices(merged.column(SEQ)))
    finally:
        for f in files:
            f.close()
