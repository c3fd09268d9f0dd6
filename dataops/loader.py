"""`dataops.load`: a serialized dataset — a directory or a DVC revision — as a fast, exactly-resumable `tf.data.Dataset`.

The hot path is `TFRecordDataset → batch → parse_example → decode → prefetch`: records are
parsed and decoded a batch at a time, never one by one. The order of the stream is a pure
function of (dataset fingerprint, split, seed, epoch, order options):

* without shuffling, the examples of the split expression in row order (shard by shard);
* with shuffling, per epoch: the shard segments are permuted, `interleave` shards are read
  round-robin, and every block of `shuffle_buffer` consecutive records is permuted
  uniformly (stateless TensorFlow RNG keyed by seed, epoch and block number, so the global
  seed set by `tf.random.set_seed` does not change it).

Each epoch is batched on its own (no batch spans two epochs). Resuming at `(epoch,
position)` skips whole shard segments without reading them (unshuffled) or skips raw
records before they are parsed (shuffled). See `dataops.resume` for the iterator state.

`element_spec` of a loaded dataset (batch dimension first, `None` unless `drop_remainder`):

| feature kind | element                                                          |
|--------------|------------------------------------------------------------------|
| `tensor`     | `tf.TensorSpec([B, *shape], float32 or int64)`                   |
| `sequence`   | `tf.RaggedTensorSpec([B, None], int64, ragged_rank=1)`; with `ragged=False`, `tf.TensorSpec([B, None])` padded with 0 |
| `text`       | `tf.TensorSpec([B], tf.string)` (UTF-8 bytes)                     |
| `bytes`      | `tf.TensorSpec([B], tf.string)`                                   |
| `image`      | `tf.TensorSpec([B, H, W, C], tf.uint8 or tf.uint16)`, decoded     |

With `supervised=(x, y)` each element is a tuple `(x, y)` of those features instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dataops.errors import ConfigError, DatasetError
from dataops.fsutil import sha256_file
from dataops.metadata import (
    METADATA_FILE,
    DatasetMetadata,
    FeatureInfo,
    ShardInfo,
    parse_metadata,
    read_metadata,
)
from dataops.resume import LoaderState, OrderOptions, check_compatible, make_iterator, parse_state
from dataops.shard_index import FRAME_HEADER, FRAME_OVERHEAD, ShardIndex, read_block, read_index

EXPORT_FILE = "export.json"
DEFAULT_DVC_PATH = "data/tfrecords"
_BIG = 1 << 62

Verify = Literal["size", "sha256", "none"]


def default_cache_dir() -> Path:
    """Where revisions of DVC repositories are materialized: `$DATAOPS_CACHE_DIR` or `~/.cache/dataops/datasets`."""
    env = os.environ.get("DATAOPS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dataops" / "datasets"


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """A readable dataset: its directory, metadata, and how it is stored."""

    directory: Path
    metadata: DatasetMetadata
    kind: Literal["tfrecord", "snapshot"]
    origin: str


def resolve_source(
    source: str | os.PathLike[str],
    *,
    repo: str | os.PathLike[str] | None = None,
    path: str = DEFAULT_DVC_PATH,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Source:
    """A dataset directory as is, or — with `repo` — the git revision `source` of that DVC repository, materialized."""
    if repo is not None:
        directory = materialize_revision(str(repo), str(source), path=path, cache_dir=cache_dir)
        origin = f"{repo}@{source}:{path}"
    else:
        directory = Path(source)
        origin = str(directory)
        if not directory.is_dir():
            raise DatasetError(
                f"{directory}: not a dataset directory (to load a git revision of a DVC repository, pass repo=...)"
            )
    export = directory / EXPORT_FILE
    if export.is_file():
        info = json.loads(export.read_text(encoding="utf-8"))
        if info.get("format") != "snapshot":
            raise DatasetError(
                f"{directory}: an export in format {info.get('format')!r}; dataops.load reads TFRecord datasets and snapshots"
            )
        return Source(directory, read_metadata(directory), "snapshot", origin)
    return Source(directory, read_metadata(directory), "tfrecord", origin)


def _check_file(p: Path, num_bytes: int, sha256: str, what: str, verify: Verify) -> None:
    """A present file's size (and, with verify="sha256", content) against metadata.json."""
    if verify == "none":
        return
    size = p.stat().st_size
    if size != num_bytes:
        raise DatasetError(
            f"{p}: {size} bytes, metadata.json says {num_bytes} — the {what} is truncated or corrupted"
        )
    if verify == "sha256" and (digest := sha256_file(p)) != sha256:
        raise DatasetError(
            f"{p}: sha256 {digest}, metadata.json says {sha256} — the {what} is corrupted"
        )


def _dataset_files(shards: list[ShardInfo]) -> list[tuple[str, str]]:
    """`(file, sha256)` of each shard and shard index."""
    out = []
    for shard in shards:
        out.append((shard.file, shard.sha256))
        if shard.index is not None:
            out.append((shard.index.file, shard.index.sha256))
    return out


def materialize_revision(
    repo: str,
    rev: str,
    *,
    path: str = DEFAULT_DVC_PATH,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Copy the dataset at `path` of git revision `rev` of DVC repository `repo` into the local cache; return its directory.

    Reads through `dvc.api.DVCFileSystem` (git objects + the DVC cache, fetching from the
    remote when the cache lacks a file): no checkout, the workspace is not touched. The
    cache directory is keyed by the sha256 of that revision's `metadata.json`, which pins
    every shard's sha256; each shard is checked against it once, when copied.
    """
    from dvc.api import DVCFileSystem

    where = f"{repo}@{rev}:{path}"
    try:
        fs = DVCFileSystem(repo, rev=rev)
        meta_bytes = fs.read_bytes(f"{path}/{METADATA_FILE}")
    except FileNotFoundError:
        raise DatasetError(f"{where}/{METADATA_FILE}: not found in that revision") from None
    except Exception as err:  # dvc/scmrepo raise many types for a bad repo or revision
        raise DatasetError(
            f"cannot read revision {rev!r} of {repo}: {type(err).__name__}: {err}"
        ) from None
    try:
        meta = parse_metadata(json.loads(meta_bytes), f"{where}/{METADATA_FILE}")
    except json.JSONDecodeError as err:
        raise DatasetError(f"{where}/{METADATA_FILE}: not valid JSON: {err}") from None
    key = hashlib.sha256(meta_bytes).hexdigest()[:16]
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = target / f"{meta.name}-{key}"
    if (target / METADATA_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.incomplete-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        for split in meta.splits:
            for file, sha256 in _dataset_files(split.shards):
                dest = tmp / file
                try:
                    fs.get_file(f"{path}/{file}", str(dest))
                except Exception as err:
                    raise DatasetError(
                        f"{where}/{file}: cannot fetch (is it pushed to the DVC remote?): {type(err).__name__}: {err}"
                    ) from None
                digest = sha256_file(dest)
                if digest != sha256:
                    raise DatasetError(
                        f"{where}/{file}: sha256 {digest}, metadata.json says {sha256}"
                    )
        (tmp / METADATA_FILE).write_bytes(meta_bytes)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (
                target / METADATA_FILE
            ).is_file():  # a concurrent loader did not win the race either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Segment:
    """Rows [start, start + count) of one shard (or of a snapshot's split)."""

    file: str
    split: str
    start: int
    count: int


_PART_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_.\-]+)\s*(?:\[\s*(?P<a>[^:\]]*?)\s*:\s*(?P<b>[^\]]*?)\s*\])?\s*$"
)


def _bound(text: str, n: int, expr: str) -> int | None:
    if text == "":
        return None
    try:
        if text.endswith("%"):
            pct = int(text[:-1])
            if not -100 <= pct <= 100:
                raise ValueError
            rows = (n * abs(pct) * 2 + 100) // 200  # nearest row, halves up
            return rows if pct >= 0 else n - rows
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"split {expr!r}: bad slice bound {text!r} (use an integer or an integer percent like 10%)"
        ) from None
    return value if value >= 0 else max(n + value, 0)


def parse_split(expr: str, meta: DatasetMetadata) -> list[tuple[str, int, int]]:
    """`"train[:10%]+validation"` → `[(split, first row, end row), ...]` (TFDS-like; percents round to the nearest row)."""
    parts = []
    for raw in expr.split("+"):
        m = _PART_RE.match(raw)
        if not m:
            raise ConfigError(
                f"split {expr!r}: cannot parse {raw!r} (examples: 'train', 'train[:10%]', 'train[100:200]', 'train+validation')"
            )
        name = m.group("name")
        try:
            n = meta.split(name).num_examples
        except DatasetError as err:
            raise ConfigError(str(err)) from None
        lo = _bound(m.group("a") or "", n, expr) if m.group("a") is not None else None
        hi = _bound(m.group("b") or "", n, expr) if m.group("b") is not None else None
        lo = 0 if lo is None else min(lo, n)
        hi = n if hi is None else min(hi, n)
        parts.append((name, lo, max(lo, hi)))
    return parts


def canonical_split(parts: list[tuple[str, int, int]], meta: DatasetMetadata) -> str:
    out = []
    for name, lo, hi in parts:
        out.append(name if (lo, hi) == (0, meta.split(name).num_examples) else f"{name}[{lo}:{hi}]")
    return "+".join(out)


def split_segments(
    parts: list[tuple[str, int, int]], meta: DatasetMetadata, directory: Path, kind: str
) -> list[Segment]:
    """The shard segments holding the rows of `parts`, from the per-shard counts (no file is read)."""
    segs: list[Segment] = []
    for name, lo, hi in parts:
        if hi <= lo:
            continue
        if kind == "snapshot":
            segs.append(Segment(str(directory / name), name, lo, hi - lo))
            continue
        base = 0
        for shard in meta.split(name).shards:
            a, b = max(lo, base), min(hi, base + shard.num_examples)
            if a < b:
                segs.append(Segment(str(directory / shard.file), name, a - base, b - a))
            base += shard.num_examples
    return segs


# --------------------------------------------------------------------------- loader


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


class Loader:
    """A configured read of one split expression of one dataset; makes datasets and iterators.

    Arguments are those of `dataops.load`. Building a `Loader` reads `metadata.json` and
    checks the shards' presence and sizes (or sha256 with `verify="sha256"`); it reads no
    record, except with `cache=True`, which reads the selected records into memory once.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        split: str = "train",
        *,
        repo: str | os.PathLike[str] | None = None,
        path: str = DEFAULT_DVC_PATH,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int | None = None,
        shuffle_buffer: int = 10_000,
        interleave: int = 8,
        repeat: int | None = 1,
        drop_remainder: bool = False,
        cache: bool = False,
        ragged: bool = True,
        features: list[str] | tuple[str, ...] | None = None,
        supervised: tuple[str | list[str], str] | None = None,
        num_parallel_calls: int | None = None,
        verify: Verify = "size",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if shuffle_buffer < 1:
            raise ConfigError(f"shuffle_buffer must be at least 1, got {shuffle_buffer}")
        if interleave < 1:
            raise ConfigError(f"interleave must be at least 1, got {interleave}")
        if repeat is not None and repeat < 0:
            raise ConfigError(
                f"repeat must be None (forever) or a number of epochs >= 0, got {repeat}"
            )
        if verify not in ("size", "sha256", "none"):
            raise ConfigError(f"verify must be 'size', 'sha256' or 'none', got {verify!r}")
        self.source = resolve_source(source, repo=repo, path=path, cache_dir=cache_dir)
        self.metadata = self.source.metadata
        meta = self.metadata
        self.parts = parse_split(split, meta)
        self.split = canonical_split(self.parts, meta)
        self.segments = split_segments(self.parts, meta, self.source.directory, self.source.kind)
        self.num_examples = sum(s.count for s in self.segments)
        self.batch_size = int(batch_size)
        self.drop_remainder = bool(drop_remainder)
        self.shuffle = bool(shuffle)
        self._seed_drawn = seed is None and bool(shuffle)
        if seed is None:
            seed = int.from_bytes(secrets.token_bytes(4), "little") if shuffle else 0
        self.seed = int(seed)
        self.shuffle_buffer = int(shuffle_buffer)
        self.interleave = int(interleave)
        self.repeat = repeat
        self.cache = bool(cache)
        self.ragged = bool(ragged)
        self.num_parallel_calls = num_parallel_calls
        names = [f.name for f in meta.features]
        wanted = list(features) if features is not None else list(names)
        if supervised is not None:
            x, y = supervised
            xs = [x] if isinstance(x, str) else list(x)
            wanted = list(dict.fromkeys([*(wanted if features is not None else []), *xs, y]))
        for n in wanted:
            if n not in names:
                raise ConfigError(f"dataset {meta.name!r} has no feature {n!r}; it has {names}")
        self.features: list[FeatureInfo] = [f for f in meta.features if f.name in wanted]
        self.supervised = supervised
        if self.repeat is None and self.epoch_size == 0:
            raise ConfigError(
                f"split {self.split!r} gives no batch per epoch ({self.num_examples} examples, batch_size {self.batch_size}, drop_remainder={self.drop_remainder}); repeat=None would never yield"
            )
        self._check_files(verify)
        self._cached: Any = None
        self._indexes: list[ShardIndex] | None = None
        if self.cache and self.source.kind == "tfrecord":
            self._load_cache()

    # ---- facts

    @property
    def fingerprint(self) -> str:
        return self.metadata.fingerprint

    @property
    def epoch_size(self) -> int:
        """Examples delivered per full epoch (fewer with drop_remainder)."""
        n = self.num_examples
        return (n // self.batch_size) * self.batch_size if self.drop_remainder else n

    def _epoch_end(self, position: int) -> int:
        """Where the epoch that is at `position` ends (it may start mid-batch after a restore)."""
        left = self.num_examples - position
        return (
            position + (left // self.batch_size) * self.batch_size
            if self.drop_remainder
            else self.num_examples
        )

    @property
    def order(self) -> OrderOptions:
        return OrderOptions(
            batch_size=self.batch_size,
            drop_remainder=self.drop_remainder,
            shuffle=self.shuffle,
            shuffle_buffer=self.shuffle_buffer if self.shuffle else 0,
            interleave=self.interleave if self.shuffle else 1,
        )

    def initial_state(self) -> LoaderState:
        return LoaderState(
            dataset=self.metadata.name,
            fingerprint=self.fingerprint,
            split=self.split,
            seed=self.seed,
            epoch=0,
            position=0,
            order=self.order,
        )

    def normalize_state(self, state: LoaderState) -> LoaderState:
        """Move a position at the end of an epoch to the start of the next."""
        if state.position < 0 or state.epoch < 0:
            raise DatasetError(
                f"iterator state has a negative epoch or position ({state.epoch}, {state.position})"
            )
        if state.position > self.num_examples:
            raise DatasetError(
                f"iterator state position {state.position} is past the {self.num_examples} examples of split {self.split!r}"
            )
        if state.position >= self._epoch_end(state.position) and state.position > 0:
            return state.model_copy(update={"epoch": state.epoch + 1, "position": 0})
        return state

    def advance(self, state: LoaderState, num_batches: int) -> LoaderState:
        """The state after `num_batches` more batches (pure arithmetic: the stream is deterministic)."""
        epoch, pos = state.epoch, state.position
        for _ in range(num_batches):
            end = self._epoch_end(pos)
            if pos >= end:
                if self.epoch_size == 0:
                    break
                epoch, pos = epoch + 1, 0
                end = self._epoch_end(0)
            pos = min(pos + self.batch_size, end)
            if pos >= end:
                epoch, pos = epoch + 1, 0
        return state.model_copy(update={"epoch": epoch, "position": pos})

    def state_after(
        self, num_batches: int, start: LoaderState | dict[str, Any] | str | None = None
    ) -> LoaderState:
        """The state after `num_batches` batches from `start` (default: the beginning) — e.g. from a Keras step count."""
        begin = self.initial_state() if start is None else parse_state(start)
        if start is not None:
            self._adopt_seed(begin)
            check_compatible(begin, self.initial_state())
        return self.advance(self.normalize_state(begin), num_batches)

    def num_batches(self, state: LoaderState | None = None) -> int | None:
        """Batches the dataset from `state` yields; None when it repeats forever."""
        if self.repeat is None:
            return None
        st = self.normalize_state(state or self.initial_state())
        if st.epoch >= self.repeat:
            return 0
        first_left = self._epoch_end(st.position) - st.position
        per_epoch = math.ceil(self.epoch_size / self.batch_size)
        return math.ceil(first_left / self.batch_size) + per_epoch * (self.repeat - st.epoch - 1)

    # ---- checks

    def _check_files(self, verify: Verify) -> None:
        if self.source.kind == "snapshot":
            for seg in self.segments:
                if not Path(seg.file).is_dir():
                    raise DatasetError(f"{seg.file}: missing (the snapshot of split '{seg.split}')")
            return
        shards = {
            str(self.source.directory / sh.file): sh
            for s in self.metadata.splits
            for sh in s.shards
        }
        for file in dict.fromkeys(seg.file for seg in self.segments):
            shard = shards[file]
            p = Path(file)
            if not p.is_file():
                raise DatasetError(
                    f"{p}: missing (metadata.json lists it with {shard.num_examples} examples; run `dvc pull`?)"
                )
            _check_file(p, shard.num_bytes, shard.sha256, "shard", verify)
            if shard.index is not None:
                ip = p.with_name(shard.index.file)
                if not ip.is_file():
                    raise DatasetError(
                        f"{ip}: missing (metadata.json lists it as the index of {p.name}; run `dvc pull`?)"
                    )
                _check_file(ip, shard.index.num_bytes, shard.index.sha256, "shard index", verify)

    def diagnose(self, err: Exception) -> DatasetError:
        """Turn a TensorFlow read/parse error into a DatasetError that names the bad shard."""
        from dataops.codec import FramingError, iter_records

        problems = []
        for file in dict.fromkeys(seg.file for seg in self.segments):
            if self.source.kind != "tfrecord":
                break
            try:
                count = sum(1 for _ in iter_records(file, self.metadata.compression))
            except (FramingError, OSError, EOFError) as bad:
                problems.append(str(bad) if file in str(bad) else f"{file}: {bad}")
                continue
            shard = next(
                sh
                for s in self.metadata.splits
                for sh in s.shards
                if str(self.source.directory / sh.file) == file
            )
            if count != shard.num_examples:
                problems.append(
                    f"{file}: holds {count} examples, metadata.json says {shard.num_examples}"
                )
            elif sha256_file(file) != shard.sha256:
                problems.append(
                    f"{file}: sha256 differs from metadata.json (records frame correctly but their content changed)"
                )
        first = getattr(err, "message", str(err)).splitlines()[0]
        if problems:
            return DatasetError(
                "corrupted shard: " + "; ".join(problems) + f" (TensorFlow: {first})"
            )
        return DatasetError(f"reading {self.source.origin} split {self.split!r} failed: {first}")

    def _load_cache(self) -> None:
        tf = _tf()
        chunks = []
        for seg in self.segments:
            ds = (
                tf.data.TFRecordDataset(seg.file, compression_type=self._compression)
                .skip(seg.start)
                .take(seg.count)
            )
            for batch in ds.batch(65536):
                chunks.append(batch)
        self._cached = tf.concat(chunks, 0) if chunks else tf.constant([], tf.string)
        if int(self._cached.shape[0]) != self.num_examples:
            raise DatasetError(
                f"{self.source.origin}: split {self.split!r} read {int(self._cached.shape[0])} records, metadata.json promises {self.num_examples}"
            )

    # ---- pipeline

    @property
    def _compression(self) -> str:
        return {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[self.metadata.compression]

    def _segment_table(self) -> tuple[Any, ...]:
        tf = _tf()
        files = [s.file for s in self.segments] or [""]
        starts = [s.start for s in self.segments] or [0]
        counts = [s.count for s in self.segments] or [0]
        offsets, mem, acc = [], [], 0
        for s in self.segments:
            offsets.append(acc)
            mem.append(acc - s.start)  # cache index of row r of this segment = mem + r
            acc += s.count
        offsets = offsets or [0]
        mem = mem or [0]
        if self.source.kind == "snapshot":
            files = [s.split for s in self.segments] or [""]
        return (
            tf.constant(files, tf.string),
            tf.constant(starts, tf.int64),
            tf.constant(counts, tf.int64),
            tf.constant(offsets, tf.int64),
            tf.constant(mem, tf.int64),
        )

    def _reader(self) -> Any:
        tf = _tf()
        if self.source.kind == "snapshot":
            splits = list(dict.fromkeys(s.split for s in self.segments))
            loaded = None
            base: dict[str, int] = {}
            total = 0
            for name in splits:
                d = tf.data.Dataset.load(str(self.source.directory / name))
                loaded = d if loaded is None else loaded.concatenate(d)
                base[name] = total
                total += self.metadata.split(name).num_examples
            if loaded is None:  # an empty selection: any split gives the element structure
                first = self.metadata.splits[0].name
                loaded = tf.data.Dataset.load(str(self.source.directory / first)).take(0)
            keys = tf.constant(list(base) or [""])
            vals = tf.constant(list(base.values()) or [0], tf.int64)
            everything = loaded

            def read_snapshot(split: Any, start: Any, count: Any, mem: Any) -> Any:
                offset = tf.reduce_sum(tf.where(keys == split, vals, tf.zeros_like(vals)))
                return everything.skip(offset + start).take(count)

            return read_snapshot
        if self._cached is not None:
            cached = self._cached

            def read_cached(file: Any, start: Any, count: Any, mem: Any) -> Any:
                return tf.data.Dataset.from_tensor_slices(cached[mem + start : mem + start + count])

            return read_cached
        compression = self._compression

        def read_shard(file: Any, start: Any, count: Any, mem: Any) -> Any:
            return (
                tf.data.TFRecordDataset(file, compression_type=compression).skip(start).take(count)
            )

        return read_shard

    def _batch(self, ds: Any, size: int, drop: bool) -> Any:
        if self.source.kind == "snapshot":
            return ds.ragged_batch(size, drop_remainder=drop)
        return ds.batch(size, drop_remainder=drop)

    def _epoch_fn(self, start_epoch: int, start_position: int) -> Any:
        tf = _tf()
        files, starts, counts, offsets, mem = self._segment_table()
        nseg = len(self.segments)
        reader = self._reader()
        B, W, drop = self.batch_size, self.shuffle_buffer, self.drop_remainder
        seed = tf.constant([self.seed & 0x7FFFFFFF, (self.seed >> 31) & 0x7FFFFFFF], tf.int64)
        snapshot = self.source.kind == "snapshot"

        def epoch(e: Any) -> Any:
            p = tf.where(
                tf.equal(e, start_epoch),
                tf.constant(start_position, tf.int64),
                tf.constant(0, tf.int64),
            )
            if not self.shuffle:
                skip = tf.clip_by_value(p - offsets, 0, counts)
                segs = tf.data.Dataset.from_tensor_slices(
                    (files, starts + skip, counts - skip, mem)
                )
                if nseg == 0:
                    segs = segs.take(0)
                return self._batch(segs.flat_map(reader), B, drop)
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
                cycle_length=max(1, min(self.interleave, nseg)),
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

            blocks = self._batch(recs, W, False).enumerate().skip(q).map(permute)
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
        tf = _tf()
        comp = self._compression
        whole = {sh.file: sh.num_examples for sp in self.metadata.splits for sh in sp.shards}
        pieces: list[Any] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                pieces.append(tf.data.TFRecordDataset(list(run), compression_type=comp))
                run.clear()

        offset = 0
        for seg in self.segments:
            skip = min(max(position - offset, 0), seg.count)
            offset += seg.count
            start, count = seg.start + skip, seg.count - skip
            if count == 0:
                continue
            total = whole[Path(seg.file).name]
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

    def _shard_indexes(self) -> list[ShardIndex] | None:
        """The indexes of the selected shards, or None when a shard has none (a compressed or
        older dataset), in which case records are read with `TFRecordDataset`."""
        if self._indexes is None:
            if self.source.kind != "tfrecord" or self._cached is not None:
                return None
            by_file = {
                str(self.source.directory / sh.file): sh
                for sp in self.metadata.splits
                for sh in sp.shards
            }
            files = list(dict.fromkeys(seg.file for seg in self.segments))
            if any(by_file[f].index is None for f in files):
                return None
            self._indexes = []
            for f in files:
                sh = by_file[f]
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
        tf = _tf()
        import numpy as np

        number = {ix.shard: i for i, ix in enumerate(indexes)}
        rows: list[tuple[int, int, int, int]] = []
        offset = 0
        for seg in self.segments:
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
        B, drop = self.batch_size, self.drop_remainder
        indexes = self._shard_indexes()
        if indexes is not None:

            def epoch(position: int) -> Any:
                return self._indexed_records(indexes, position).rebatch(B, drop_remainder=drop)

        else:

            def epoch(position: int) -> Any:
                return self._batch(self._plain_records(position), B, drop)

        first = epoch(st.position)
        if self.repeat is not None and st.epoch >= self.repeat:
            return first.take(0)
        more = None if self.repeat is None else self.repeat - st.epoch - 1
        if more == 0:
            return first
        return first.concatenate(epoch(0).repeat(more))

    def _post(self) -> Any:
        tf = _tf()
        from dataops.spec import decode_feature, dense_feature, feature_spec

        feats = self.features
        spec = {f.name: feature_spec(f) for f in feats}
        snapshot = self.source.kind == "snapshot"
        ragged = self.ragged
        sup = self.supervised

        def finish(values: dict[str, Any]) -> Any:
            out = {}
            for f in feats:
                v = values[f.name]
                if not snapshot:
                    v = decode_feature(f, v)
                if not ragged:
                    v = dense_feature(f, v)
                out[f.name] = v
            if sup is not None:
                x, y = sup
                xv = out[x] if isinstance(x, str) else {k: out[k] for k in x}
                return xv, out[y]
            return out

        if snapshot:
            return lambda batch: finish({f.name: batch[f.name] for f in feats})
        return lambda raw: finish(tf.io.parse_example(raw, spec))

    def _adopt_seed(self, state: LoaderState) -> None:
        """A loader built with seed=None takes the seed of the state it restores."""
        if self._seed_drawn:
            self.seed = state.seed
            self._seed_drawn = False

    def dataset(self, state: LoaderState | dict[str, Any] | str | None = None) -> Any:
        """The `tf.data.Dataset` of batches, from the beginning or from `state`."""
        tf = _tf()
        if state is None:
            st = self.initial_state()
        else:
            st = parse_state(state)
            self._adopt_seed(st)
            check_compatible(st, self.initial_state())
        st = self.normalize_state(st)
        stop = _BIG if self.repeat is None else self.repeat
        if not self.shuffle and self.source.kind != "snapshot" and self._cached is None:
            ds = self._plain_epochs(st)
        else:
            epochs = tf.data.Dataset.range(st.epoch, max(st.epoch, stop))
            ds = epochs.flat_map(self._epoch_fn(st.epoch, st.position))
        n = self.num_batches(st)
        if n is not None:
            ds = ds.apply(tf.data.experimental.assert_cardinality(n))
        ds = ds.map(
            self._post(),
            num_parallel_calls=self.num_parallel_calls,
            deterministic=True if self.num_parallel_calls else None,
        )
        ds = ds.prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options)

    def iterator(self, state: LoaderState | dict[str, Any] | str | None = None) -> Any:
        """A `DatasetIterator` (resumable, trackable by `tf.train.Checkpoint`)."""
        st = None
        if state is not None:
            st = parse_state(state)
            self._adopt_seed(st)
            check_compatible(st, self.initial_state())
        return make_iterator(self, st)

    @property
    def element_spec(self) -> Any:
        return self.dataset().element_spec


def load(
    source: str | os.PathLike[str],
    split: str = "train",
    *,
    state: LoaderState | dict[str, Any] | str | None = None,
    **options: Any,
) -> Any:
    """A serialized dataset as a `tf.data.Dataset` of batches.

    source: a dataset directory (TFRecord shards + metadata.json, or a snapshot written by
        `dataops export --format snapshot`); or, with `repo=`, a git revision (tag, branch,
        commit) of that DVC repository, whose dataset at `path=` (default `data/tfrecords`)
        is read through DVC without a checkout and cached under `cache_dir`.
    split: `"train"`, `"train[:10%]"`, `"train[100:200]"`, `"train+validation"`, ...
    state: continue from a `LoaderState` (or its dict/JSON) saved by a `DatasetIterator`.
    options: batch_size=32, shuffle=False, seed=None (random, recorded in the state),
        shuffle_buffer=10000, interleave=8, repeat=1 (None: forever), drop_remainder=False,
        cache=False, ragged=True (False: pad sequences with 0), features=None (all),
        supervised=None or (x, y), num_parallel_calls=None, verify="size"|"sha256"|"none",
        cache_dir=None.
    """
    return Loader(source, split, **options).dataset(state)
