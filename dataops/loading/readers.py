"""Raw records of one loader's segments, as tf.data pipelines of batches.

* `plain`: an unshuffled epoch; with shard indexes, block by block (one `pread` and one
  CRC-32C check per ~1 MiB block, records cut out at the index's offsets), else with
  `TFRecordDataset` over runs of whole shards;
* `shuffled`: per epoch, the shard segments permuted, `interleave` of them read round-robin,
  every block of `shuffle_buffer` records permuted (stateless RNG keyed by seed, epoch and
  block number);
* `cached`: the selected records held in memory, read like the shards;
* `snapshot`: the splits of a `tf.data` snapshot export.

Each epoch is batched on its own (no batch spans two epochs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.errors import DatasetError
from dataops.loading.splits import Segment
from dataops.loading.state import LoaderState
from dataops.metadata import DatasetMetadata
from dataops.shard_index import FRAME_HEADER, FRAME_OVERHEAD, ShardIndex, read_block, read_index

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

    @property
    def compression(self) -> str:
        return {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[self.metadata.compression]


class Readers:
    """The record pipelines of one plan; shard indexes and the cache are read once."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.cached: Any = None
        self._indexes: list[ShardIndex] | None = None

    def batch(self, ds: Any, size: int, drop: bool) -> Any:
        if self.plan.kind == "snapshot":
            return ds.ragged_batch(size, drop_remainder=drop)
        return ds.batch(size, drop_remainder=drop)

    def epochs(self, st: LoaderState) -> Any:
        """Batches from `st`: the rest of its epoch, then the following epochs."""
        plan = self.plan
        if not plan.shuffle and plan.kind != "snapshot" and self.cached is None:
            return self._plain_epochs(st)
        tf = tf_module()
        stop = BIG if plan.repeat is None else plan.repeat
        epochs = tf.data.Dataset.range(st.epoch, max(st.epoch, stop))
        return epochs.flat_map(self._epoch_fn(st.epoch, st.position, st.seed))

    def load_cache(self, where: str) -> None:
        """Read the selected records into memory (`where` names the source in errors)."""
        tf = tf_module()
        chunks = []
        for seg in self.plan.segments:
            ds = (
                tf.data.TFRecordDataset(seg.file, compression_type=self.plan.compression)
                .skip(seg.start)
                .take(seg.count)
            )
            for batch in ds.batch(65536):
                chunks.append(batch)
        self.cached = tf.concat(chunks, 0) if chunks else tf.constant([], tf.string)
        want = sum(s.count for s in self.plan.segments)
        if int(self.cached.shape[0]) != want:
            raise DatasetError(
                f"{where}: read {int(self.cached.shape[0])} records, metadata.json promises {want}"
            )

    def _segment_table(self) -> tuple[Any, ...]:
        tf = tf_module()
        files = [s.file for s in self.plan.segments] or [""]
        starts = [s.start for s in self.plan.segments] or [0]
        counts = [s.count for s in self.plan.segments] or [0]
        offsets, mem, acc = [], [], 0
        for s in self.plan.segments:
            offsets.append(acc)
            mem.append(acc - s.start)  # cache index of row r of this segment = mem + r
            acc += s.count
        offsets = offsets or [0]
        mem = mem or [0]
        if self.plan.kind == "snapshot":
            files = [s.split for s in self.plan.segments] or [""]
        return (
            tf.constant(files, tf.string),
            tf.constant(starts, tf.int64),
            tf.constant(counts, tf.int64),
            tf.constant(offsets, tf.int64),
            tf.constant(mem, tf.int64),
        )

    def _reader(self) -> Any:
        tf = tf_module()
        if self.plan.kind == "snapshot":
            splits = list(dict.fromkeys(s.split for s in self.plan.segments))
            loaded = None
            base: dict[str, int] = {}
            total = 0
            for name in splits:
                d = tf.data.Dataset.load(str(self.plan.directory / name))
                loaded = d if loaded is None else loaded.concatenate(d)
                base[name] = total
                total += self.plan.metadata.split(name).num_examples
            if loaded is None:  # an empty selection: any split gives the element structure
                first = self.plan.metadata.splits[0].name
                loaded = tf.data.Dataset.load(str(self.plan.directory / first)).take(0)
            keys = tf.constant(list(base) or [""])
            vals = tf.constant(list(base.values()) or [0], tf.int64)
            everything = loaded

            def read_snapshot(split: Any, start: Any, count: Any, mem: Any) -> Any:
                offset = tf.reduce_sum(tf.where(keys == split, vals, tf.zeros_like(vals)))
                return everything.skip(offset + start).take(count)

            return read_snapshot
        if self.cached is not None:
            cached = self.cached

            def read_cached(file: Any, start: Any, count: Any, mem: Any) -> Any:
                return tf.data.Dataset.from_tensor_slices(cached[mem + start : mem + start + count])

            return read_cached
        compression = self.plan.compression

        def read_shard(file: Any, start: Any, count: Any, mem: Any) -> Any:
            return (
                tf.data.TFRecordDataset(file, compression_type=compression).skip(start).take(count)
            )

        return read_shard

    def _batch(self, ds: Any, size: int, drop: bool) -> Any:
        if self.plan.kind == "snapshot":
            return ds.ragged_batch(size, drop_remainder=drop)
        return ds.batch(size, drop_remainder=drop)

    def _epoch_fn(self, start_epoch: int, start_position: int, seed_value: int) -> Any:
        tf = tf_module()
        files, starts, counts, offsets, mem = self._segment_table()
        nseg = len(self.plan.segments)
        reader = self._reader()
        B, W, drop = self.plan.batch_size, self.plan.shuffle_buffer, self.plan.drop_remainder
        seed = tf.constant([seed_value & 0x7FFFFFFF, (seed_value >> 31) & 0x7FFFFFFF], tf.int64)
        snapshot = self.plan.kind == "snapshot"

        def epoch(e: Any) -> Any:
            p = tf.where(
                tf.equal(e, start_epoch),
                tf.constant(start_position, tf.int64),
                tf.constant(0, tf.int64),
            )
            if not self.plan.shuffle:
                skip = tf.clip_by_value(p - offsets, 0, counts)
                segs = tf.data.Dataset.from_tensor_slices(
                    (files, starts + skip, counts - skip, mem)
                )
                if nseg == 0:
                    segs = segs.take(0)
                return self.batch(segs.flat_map(reader), B, drop)
            key = tf.random.experimental.stateless_fold_in(seed, e)
            perm = tf.random.experimental.stateless_shuffle(
                tf.range(nseg, dtype=tf.int64),
                seed=tf.random.experimental.stateless_fold_in(key, 0),
            )
            segs = tf.data.Dataset.from_tensor_slices(
                tuple(tf.gather(t, perm) for t in (files, starts, counts, mem))
            )
            recs = segs.interleave(
                lambda f, a, n, m: reader(f, a, n, m),
                cycle_length=max(1, min(self.plan.interleave, nseg)),
                block_length=1,
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
                return tf.nest.map_structure(lambda t: tf.gather(t, order[cut:]), block)

            blocks = self.batch(recs, W, False).enumerate().skip(q).map(permute)
            if snapshot:
                return blocks.unbatch().ragged_batch(B, drop_remainder=drop)
            return blocks.rebatch(B, drop_remainder=drop)

        return epoch

    def _plain_records(self, position: int) -> Any:
        """One unshuffled epoch of raw records from `position`, with few tf.data layers per record.

        Runs of whole shards are read by one `TFRecordDataset`; only a partly used shard (a
        slice, or a restored position) gets `skip`/`take`. Per-record layers cost about as much
        as parsing on small records, so this path is what the read benchmark measures.
        """
        tf = tf_module()
        comp = self.plan.compression
        pieces: list[Any] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                pieces.append(tf.data.TFRecordDataset(list(run), compression_type=comp))
                run.clear()

        offset = 0
        for seg in self.plan.segments:
            skip = min(max(position - offset, 0), seg.count)
            offset += seg.count
            start, count = seg.start + skip, seg.count - skip
            if count == 0:
                continue
            assert seg.shard is not None
            total = seg.shard.num_examples
            if start == 0 and count == total:
                run.append(seg.file)
                continue
            flush()
            piece = tf.data.TFRecordDataset(seg.file, compression_type=comp)
            if start:
                piece = piece.skip(start)
            if start + count < total:
                piece = piece.take(count)
            pieces.append(piece)
        flush()
        if not pieces:
            return tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
        ds = pieces[0]
        for piece in pieces[1:]:
            ds = ds.concatenate(piece)
        return ds

    def shard_indexes(self) -> list[ShardIndex] | None:
        """The indexes of the selected shards, or None when a shard has none (a compressed or
        older dataset), in which case records are read with `TFRecordDataset`."""
        if self._indexes is None:
            if self.plan.kind != "tfrecord" or self.cached is not None:
                return None
            by_file = {s.file: s.shard for s in self.plan.segments if s.shard is not None}
            if any(sh.index is None for sh in by_file.values()):
                return None
            self._indexes = []
            for f, sh in by_file.items():
                assert sh.index is not None
                self._indexes.append(
                    read_index(f, Path(f).with_name(sh.index.file), sh.num_examples, sh.num_bytes)
                )
        return self._indexes

    def _indexed_records(self, indexes: list[ShardIndex], position: int) -> Any:
        """One unshuffled epoch from `position` as string vectors, one per index block read.

        Each block (about 1 MiB) is read with one `pread`, checked against its CRC-32C and the
        record framing (`dataops.shard_index.read_block`), and cut into records with one
        `tf.strings.substr` at the offsets of the index: no per-record step at all.
        """
        tf = tf_module()
        import numpy as np

        number = {ix.shard: i for i, ix in enumerate(indexes)}
        rows: list[tuple[int, int, int, int]] = []
        offset = 0
        for seg in self.plan.segments:
            skip = min(max(position - offset, 0), seg.count)
            offset += seg.count
            ix = number[seg.file]
            rows += [(ix, *b) for b in indexes[ix].blocks_for(seg.start + skip, seg.count - skip)]
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)

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

        cols = tuple(tf.constant(table[:, k]) for k in range(4))
        return tf.data.Dataset.from_tensor_slices(cols).map(records)

    def _plain_epochs(self, st: LoaderState) -> Any:
        """Unshuffled batches from `st`: the rest of its epoch, then whole epochs (batched per epoch)."""
        B, drop = self.plan.batch_size, self.plan.drop_remainder
        indexes = self.shard_indexes()
        if indexes is not None:

            def epoch(position: int) -> Any:
                return self._indexed_records(indexes, position).rebatch(B, drop_remainder=drop)

        else:

            def epoch(position: int) -> Any:
                return self.batch(self._plain_records(position), B, drop)

        first = epoch(st.position)
        if self.plan.repeat is not None and st.epoch >= self.plan.repeat:
            return first.take(0)
        more = None if self.plan.repeat is None else self.plan.repeat - st.epoch - 1
        if more == 0:
            return first
        return first.concatenate(epoch(0).repeat(more))
