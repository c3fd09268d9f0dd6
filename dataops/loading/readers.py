"""Raw records of one loader's segments, as tf.data pipelines of batches.

* unshuffled, with shard indexes: block by block (one `pread` and one CRC-32C check per
  ~1 MiB block, records cut out at the index's offsets);
* shuffled: per epoch, the shard segments permuted, `interleave` of them read round-robin,
  every block of `shuffle_buffer` records permuted (stateless RNG keyed by seed, epoch and
  block number); records through the index, or `TFRecordDataset` for shards without one;
* cached (records in memory), snapshot exports and shards without index use the same
  segment readers. With several workers each keeps its positions (see `Geometry`).
Each epoch is batched on its own (no batch spans two epochs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.errors import DatasetError
from dataops.loading.checks import Opened
from dataops.loading.snapshot import snapshot_reader
from dataops.loading.splits import Segment
from dataops.loading.state import Geometry, LoaderState
from dataops.metadata import DatasetMetadata
from dataops.tfrecord.shard_index import (
    FRAME_HEADER,
    FRAME_OVERHEAD,
    ShardIndex,
    changed_while_reading,
    file_identity,
    read_block,
    read_index,
)

BIG = 1 << 62


def tf_module() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


@dataclass(frozen=True)
class Plan:
    """What the readers need to know of a loader: its rows and its order options."""

    metadata: DatasetMetadata
    directory: Path
    kind: str  # "tfrecord" | "snapshot"
    segments: list[Segment]
    batch_size: int
    drop_remainder: bool
    shuffle: bool
    shuffle_buffer: int
    interleave: int
    repeat: int | None
    geometry: Geometry

    @property
    def compression(self) -> str:
        return {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[self.metadata.compression]


class Readers:
    """The record pipelines of one plan; shard indexes and the cache are read once."""

    def __init__(self, plan: Plan, opened: Opened | None = None) -> None:
        self.plan = plan
        self.opened = opened or Opened()
        self.cached: Any = None
        self._indexes: list[ShardIndex] | None = None
        self._no_index = False

    def batch(self, ds: Any, size: int, drop: bool) -> Any:
        if self.plan.kind == "snapshot":
            return ds.ragged_batch(size, drop_remainder=drop)
        return ds.batch(size, drop_remainder=drop)

    def epochs(self, st: LoaderState) -> Any:
        """Batches from `st`: the rest of its epoch, then the following epochs."""
        plan = self.plan
        if not plan.shuffle and self.shard_indexes() is not None:
            return self._plain_epochs(st)
        tf = tf_module()
        stop = BIG if plan.repeat is None else plan.repeat
        epochs = tf.data.Dataset.range(st.epoch, max(st.epoch, stop))
        return epochs.flat_map(self._epoch_fn(st.epoch, st.position, st.seed))

    # ---- shard indexes

    def _all_indexes(self) -> list[ShardIndex] | None:
        """The indexes of the selected shards in first-read order, or None when a shard has
        none (a compressed or older dataset): records are then read with `TFRecordDataset`."""
        if self._indexes is None and not self._no_index and self.plan.kind == "tfrecord":
            by_file = {s.file: s.shard for s in self.plan.segments if s.shard is not None}
            if any(sh.index is None for sh in by_file.values()):
                self._no_index = True
                return None
            out = []
            for f, sh in by_file.items():
                assert sh.index is not None
                ix = self.opened.indexes.get(f) or read_index(
                    f,
                    Path(f).parent / sh.index.file,
                    sh.num_examples,
                    sh.num_bytes,
                    sha256=sh.index.sha256,
                    identities=self.opened.identities,
                )
                out.append(ix)
            self._indexes = out
        return self._indexes

    def shard_indexes(self) -> list[ShardIndex] | None:
        """The indexes the stream is read with (None: cached, snapshot or no indexes)."""
        return None if self.cached is not None else self._all_indexes()

    def _block_table(self, indexes: list[ShardIndex], ranges: list[tuple[int, int]]) -> Any:
        """`[shard number, block, skip, take]` rows covering, per segment, its rows `ranges[k]`
        (first row within the segment, count), in order."""
        import numpy as np

        number = {ix.shard: i for i, ix in enumerate(indexes)}
        rows: list[tuple[int, int, int, int]] = []
        for seg, (skip, count) in zip(self.plan.segments, ranges, strict=True):
            ix = number[seg.file]
            rows += [(ix, *b) for b in indexes[ix].blocks_for(seg.start + skip, count)]
        return np.array(rows, dtype=np.int64).reshape(-1, 4)

    def _block_records(self, indexes: list[ShardIndex]) -> Any:
        """A function: (shard number, block, skip, take) → that block's records, a string vector.

        Each block (about 1 MiB) is read with one `pread`, checked against its CRC-32C and the
        record framing (`dataops.tfrecord.shard_index.read_block`), and cut into records with one
        `tf.strings.substr` at the offsets of the index: no per-record step at all.
        """
        tf = tf_module()
        import numpy as np

        def read(i: Any, block: Any, skip: Any, take: Any) -> tuple[bytes, Any, Any]:
            blob, rel = read_block(indexes[int(i)], int(block))
            rel = rel[int(skip) : int(skip) + int(take) + 1]
            return blob, rel[:-1] + FRAME_HEADER, np.diff(rel) - FRAME_OVERHEAD

        def records(i: Any, block: Any, skip: Any, take: Any) -> Any:
            blob, starts, lengths = tf.numpy_function(
                read, [i, block, skip, take], [tf.string, tf.int64, tf.int64], stateful=False
            )
            blob.set_shape([])
            starts.set_shape([None])
            lengths.set_shape([None])
            return tf.strings.substr(blob, starts, lengths)

        return records

    def _indexed_records(self, indexes: list[ShardIndex], position: int) -> Any:
        """One unshuffled epoch from `position` as string vectors, one per index block read
        (with several workers, this worker's records of each block)."""
        tf = tf_module()
        import numpy as np

        g = self.plan.geometry
        ranges, offset, end = [], 0, g.epoch_end(position)
        for seg in self.plan.segments:
            a = min(max(position - offset, 0), seg.count)
            b = min(max(end - offset, 0), seg.count)
            offset += seg.count
            ranges.append((a, max(b - a, 0)))
        table = self._block_table(indexes, ranges)
        cols = tuple(tf.constant(table[:, k]) for k in range(4))
        records = self._block_records(indexes)
        if g.num_workers == 1:
            return tf.data.Dataset.from_tensor_slices(cols).map(records)
        first = np.concatenate([[0], np.cumsum(table[:, 3])[:-1]]).astype(np.int64) + position
        n, w = g.num_workers, g.worker_index

        def mine(i: Any, block: Any, skip: Any, take: Any, at: Any) -> Any:
            v = records(i, block, skip, take)
            return v[(w - at) % n :: n]

        return tf.data.Dataset.from_tensor_slices((*cols, tf.constant(first))).map(mine)

    def _plain_epochs(self, st: LoaderState) -> Any:
        """Unshuffled batches from `st` through the indexes: the rest of its epoch, then whole
        epochs (batched per epoch)."""
        B, drop = self.plan.batch_size, self.plan.drop_remainder
        indexes = self.shard_indexes()
        assert indexes is not None

        def epoch(position: int) -> Any:
            return self._indexed_records(indexes, position).rebatch(B, drop_remainder=drop)

        first = epoch(st.position)
        if self.plan.repeat is not None and st.epoch >= self.plan.repeat:
            return first.take(0)
        more = None if self.plan.repeat is None else self.plan.repeat - st.epoch - 1
        if more == 0:
            return first
        return first.concatenate(epoch(0).repeat(more))

    # ---- cache

    def load_cache(self, where: str) -> None:
        """Read the selected records into memory (`where` names the source in errors)."""
        tf = tf_module()
        indexes = self._all_indexes()
        if indexes is not None:
            table = self._block_table(indexes, [(0, s.count) for s in self.plan.segments])
            cols = tuple(tf.constant(table[:, k]) for k in range(4))
            ds = tf.data.Dataset.from_tensor_slices(cols).map(self._block_records(indexes))
        else:
            files, starts, counts, _, _, totals = self._segment_columns()
            segs = tf.data.Dataset.from_tensor_slices(
                (tf.constant(files), *(tf.constant(c, tf.int64) for c in (starts, counts, totals)))
            )
            reader = self._shard_reader()
            ds = segs.take(len(self.plan.segments)).flat_map(
                lambda f, a, n, t: reader(f, a, n, 0, t, 0, 0)
            )
            ds = ds.batch(65536)
        chunks = list(ds)  # a TensorFlow error here is named by the caller (`Loader.diagnose`)
        self.cached = tf.concat(chunks, 0) if chunks else tf.constant([], tf.string)
        want = sum(s.count for s in self.plan.segments)
        if int(self.cached.shape[0]) != want:
            raise DatasetError(
                f"{where}: read {int(self.cached.shape[0])} records, metadata.json promises {want}"
            )

    # ---- segment readers (one segment → a dataset of records)

    def _segment_columns(self) -> tuple[list[Any], ...]:
        segs = self.plan.segments
        if self.plan.kind == "snapshot":
            files = [s.split for s in segs]
        else:
            files = [s.file for s in segs]
        offsets, mem, acc = [], [], 0
        for s in segs:
            offsets.append(acc)
            mem.append(acc - s.start)  # cache index of row r of this segment = mem + r
            acc += s.count
        totals = [s.shard.num_examples if s.shard is not None else 0 for s in segs]
        ints: list[list[Any]] = [[s.start for s in segs], [s.count for s in segs], offsets, mem]
        cols: list[list[Any]] = [files, *ints, totals]
        defaults: tuple[Any, ...] = ("", 0, 0, 0, 0, 0)
        return tuple(c or [d] for c, d in zip(cols, defaults, strict=True))

    def _shard_reader(self) -> Any:
        """A segment of a shard without index, by `TFRecordDataset`: checked not to have
        changed since the loader was built when it is opened, and, when read to the shard's
        end, to hold exactly the records metadata.json says."""
        tf = tf_module()
        compression = self.plan.compression
        identities = self.opened.identities

        def unchanged(f: bytes) -> bytes:
            name = f.decode()
            try:
                now = file_identity(name)
            except FileNotFoundError:
                now = None
            if name in identities and now != identities[name]:
                raise changed_while_reading(name)
            return f

        def read_shard(f: Any, a: Any, n: Any, m: Any, t: Any, lo: Any, hi: Any) -> Any:
            f = tf.numpy_function(unchanged, [f], tf.string, stateful=True)
            f.set_shape([])
            to_end = a + n >= t
            ds = tf.data.TFRecordDataset(f, compression_type=compression).skip(a)
            ds = ds.take(tf.where(to_end, tf.constant(-1, tf.int64), n))
            return ds.apply(tf.data.experimental.assert_cardinality(n))

        return read_shard

    def _reader(self) -> Any:
        """The segment reader of this plan: (file, start, count, mem, total, lo, hi) → records."""
        tf = tf_module()
        if self.plan.kind == "snapshot":
            return snapshot_reader(self.plan.directory, self.plan.metadata, self.plan.segments)
        if self.cached is not None:
            cached = self.cached

            def read_cached(f: Any, a: Any, n: Any, m: Any, t: Any, lo: Any, hi: Any) -> Any:
                return tf.data.Dataset.from_tensor_slices(cached[m + a : m + a + n])

            return read_cached
        indexes = self._all_indexes()
        if indexes is None:
            return self._shard_reader()
        cols = tuple(tf.constant(self._whole_table[:, k]) for k in range(4))
        records = self._block_records(indexes)

        def read_indexed(f: Any, a: Any, n: Any, m: Any, t: Any, lo: Any, hi: Any) -> Any:
            rows = tuple(c[lo:hi] for c in cols)
            return tf.data.Dataset.from_tensor_slices(rows).map(records).unbatch()

        return read_indexed

    @property
    def _whole_table(self) -> Any:
        indexes = self._all_indexes()
        assert indexes is not None
        return self._block_table(indexes, [(0, s.count) for s in self.plan.segments])

    def _row_ranges(self) -> tuple[list[int], list[int]]:
        """Per segment, its rows `[lo, hi)` of `_whole_table` (zeros without indexes)."""
        n = len(self.plan.segments)
        indexes = self._all_indexes() if self.cached is None else None
        if indexes is None or self.plan.kind != "tfrecord":
            return [0] * max(n, 1), [0] * max(n, 1)
        number = {ix.shard: i for i, ix in enumerate(indexes)}
        lo, hi, acc = [], [], 0
        for seg in self.plan.segments:
            k = len(indexes[number[seg.file]].blocks_for(seg.start, seg.count))
            lo.append(acc)
            hi.append(acc + k)
            acc += k
        return lo or [0], hi or [0]

    # ---- epochs through segment readers (shuffled; or cached, snapshot, no index)

    def _epoch_fn(self, start_epoch: int, start_position: int, seed_value: int) -> Any:
        tf = tf_module()
        columns = self._segment_columns()
        files = tf.constant(columns[0], tf.string)
        starts, counts, offsets, mem, totals = (tf.constant(c, tf.int64) for c in columns[1:])
        lo, hi = (tf.constant(c, tf.int64) for c in self._row_ranges())
        nseg = len(self.plan.segments)
        reader = self._reader()
        B, W, drop = self.plan.batch_size, self.plan.shuffle_buffer, self.plan.drop_remainder
        seed = tf.constant([seed_value & 0x7FFFFFFF, (seed_value >> 31) & 0x7FFFFFFF], tf.int64)
        snapshot = self.plan.kind == "snapshot"
        g = self.plan.geometry
        N, w = g.num_workers, g.worker_index
        end_first = tf.constant(g.epoch_end(start_position), tf.int64)
        end_zero = tf.constant(g.epoch_end(0), tf.int64)

        def epoch(e: Any) -> Any:
            p = tf.where(
                tf.equal(e, start_epoch),
                tf.constant(start_position, tf.int64),
                tf.constant(0, tf.int64),
            )
            if not self.plan.shuffle:
                skip = tf.clip_by_value(p - offsets, 0, counts)
                segs = tf.data.Dataset.from_tensor_slices(
                    (files, starts + skip, counts - skip, mem, totals, lo, hi)
                )
                if nseg == 0:
                    segs = segs.take(0)
                recs = segs.flat_map(reader)
                if N > 1:  # this worker's positions: those = worker_index (mod N), before the end
                    end = tf.where(tf.equal(e, start_epoch), end_first, end_zero)
                    recs = recs.take(end - p).skip((w - p) % N).shard(N, 0)
                return self.batch(recs, B, drop)
            key = tf.random.experimental.stateless_fold_in(seed, e)
            perm = tf.random.experimental.stateless_shuffle(
                tf.range(nseg, dtype=tf.int64),
                seed=tf.random.experimental.stateless_fold_in(key, 0),
            )
            segs = tf.data.Dataset.from_tensor_slices(
                tuple(tf.gather(t, perm) for t in (files, starts, counts, mem, totals, lo, hi))
            )
            recs = segs.interleave(
                reader, cycle_length=max(1, min(self.plan.interleave, nseg)), block_length=1
            )
            q, r = p // W, p % W
            block_key = tf.random.experimental.stateless_fold_in(key, 1)

            def permute(i: Any, block: Any) -> Any:
                first = next(iter(tf.nest.flatten(block)))
                n = (
                    first.nrows()
                    if isinstance(first, tf.RaggedTensor)
                    else tf.shape(first, out_type=tf.int64)[0]
                )
                order = tf.random.experimental.stateless_shuffle(
                    tf.range(n), seed=tf.random.experimental.stateless_fold_in(block_key, i)
                )
                cut = tf.where(tf.equal(i, q), r, tf.constant(0, tf.int64))
                take = order[cut:]
                if N > 1:  # this worker's positions: those = worker_index (mod N), before the end
                    at = i * W + cut
                    end = tf.where(tf.equal(e, start_epoch), end_first, end_zero)
                    stop = tf.clip_by_value(end - at, 0, tf.size(take, out_type=tf.int64))
                    first = (w - at) % N
                    take = tf.gather(take, tf.range(first, tf.maximum(stop, first), N))
                return tf.nest.map_structure(lambda t: tf.gather(t, take), block)

            blocks = self.batch(recs, W, False).enumerate().skip(q).map(permute)
            if snapshot:
                return blocks.unbatch().ragged_batch(B, drop_remainder=drop)
            return blocks.rebatch(B, drop_remainder=drop)

        return epoch
