"""`Loader` and `dataops.load`: a dataset as a fast, exactly-resumable `tf.data.Dataset`.

The hot path is `records → batch → parse_example → decode → prefetch`: records are parsed
and decoded a batch at a time, never one by one. The order of the stream is a pure
function of (dataset fingerprint, split, seed, epoch, order options): without shuffling,
the examples of the split expression in row order (shard by shard); with shuffling, see
`dataops.loading.readers`. Resuming at `(epoch, position)` skips whole shard segments
without reading them (unshuffled) or skips raw records before they are parsed (shuffled).

`element_spec` of a loaded dataset (batch dimension first, `None` unless `drop_remainder`):

| feature kind | element                                                          |
|--------------|------------------------------------------------------------------|
| `tensor`     | `tf.TensorSpec([B, *shape], float32 or int64)`                   |
| `sequence`   | `tf.RaggedTensorSpec([B, None], int64, ragged_rank=1)`; with `ragged=False`, `tf.TensorSpec([B, None])` padded with 0 |
| `text`       | `tf.TensorSpec([B], tf.string)` (UTF-8 bytes)                     |
| `bytes`      | `tf.TensorSpec([B], tf.string)`                                   |
| `image`      | `tf.TensorSpec([B, H, W, C], tf.uint8 or tf.uint16)`, decoded     |

With `supervised=(x, y)` each element is a tuple `(x, y)` of those features instead.

**Several training workers** (`num_workers=N, worker_index=i`, or `input_context=` a
`tf.distribute.InputContext`): the stream is the one-worker stream with the global batch
`N * batch_size`; worker i's batch k holds the positions of global batch k that are `i`
modulo N. The workers together read each epoch exactly once, each within one example of
the others; a worker with no part of an epoch's short last batch yields one batch fewer
(use `drop_remainder=True` for synchronous training). The global order depends on the
dataset, split, seed, shuffle_buffer, interleave, drop_remainder and the global batch size
— not on N. A state is the global position, the same for every worker: it resumes any
worker, also with another N of the same global batch size.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from dataops.errors import ConfigError, DatasetError
from dataops.loading.checks import check_files, diagnose
from dataops.loading.decode import finisher
from dataops.loading.iterator import make_iterator
from dataops.loading.options import LoadOptions
from dataops.loading.readers import Plan, Readers, tf_module
from dataops.loading.source import resolve_source
from dataops.loading.splits import select
from dataops.loading.state import (
    Geometry,
    LoaderState,
    OrderOptions,
    check_compatible,
    parse_state,
)
from dataops.metadata import FeatureInfo

StateLike = LoaderState | dict[str, Any] | str


def _wanted_features(
    meta_features: list[FeatureInfo], opts: LoadOptions, name: str
) -> list[FeatureInfo]:
    names = [f.name for f in meta_features]
    wanted = list(opts.features) if opts.features is not None else list(names)
    if opts.supervised is not None:
        x, y = opts.supervised
        xs = [x] if isinstance(x, str) else list(x)
        wanted = list(dict.fromkeys([*(wanted if opts.features is not None else []), *xs, y]))
    for n in wanted:
        if n not in names:
            raise ConfigError(f"dataset {name!r} has no feature {n!r}; it has {names}")
    return [f for f in meta_features if f.name in wanted]


class Loader:
    """A configured read of one split expression of one dataset; makes datasets and iterators.

    `Loader(source, split, options=LoadOptions(...))` or `Loader(source, split, **options)`
    (the keywords of `dataops.load`). Building a `Loader` reads `metadata.json` and checks the
    shards (see `verify`); it reads no record, except with `cache=True`, which reads the
    selected records into memory once.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        split: str = "train",
        *,
        options: LoadOptions | None = None,
        **kwargs: Any,
    ) -> None:
        opts = LoadOptions.of(options, **kwargs)
        self.options = opts
        self.source = resolve_source(
            source, repo=opts.repo, path=opts.path, cache_dir=opts.cache_dir, split=split
        )
        self.metadata = meta = self.source.metadata
        selection = select(split, meta, self.source.directory, self.source.kind)
        self.split = selection.split
        self.segments = selection.segments
        self.num_examples = selection.num_examples
        self.batch_size = opts.batch_size
        self.drop_remainder = opts.drop_remainder
        self.shuffle = opts.shuffle
        self._seed_drawn = opts.seed is None and opts.shuffle
        seed = opts.seed
        if seed is None:
            seed = int.from_bytes(secrets.token_bytes(4), "little") if opts.shuffle else 0
        self.seed = int(seed)
        self.repeat = opts.repeat
        self.features = _wanted_features(meta.features, opts, meta.name)
        self.num_workers, self.worker_index = opts.num_workers, opts.worker_index
        self.geometry = Geometry(
            self.num_examples,
            opts.batch_size * opts.num_workers,  # the global batch
            opts.drop_remainder,
            opts.repeat,
            self.split,
            opts.num_workers,
            opts.worker_index,
        )
        if self.repeat is None and self.geometry.batches_per_epoch == 0:
            raise ConfigError(
                f"split {self.split!r} gives no batch per epoch ({self.num_examples} examples, batch_size {self.batch_size}, drop_remainder={self.drop_remainder}); repeat=None would never yield"
            )
        self._opened = check_files(self.segments, self.source.kind, opts.verify, meta)
        self._readers = Readers(self._plan(), self._opened)
        if opts.cache and self.source.kind == "tfrecord":
            tf = tf_module()
            try:
                self._readers.load_cache(f"{self.source.origin}: split {self.split!r}")
            except tf.errors.OpError as err:
                raise self.diagnose(err) from None

    def _plan(self) -> Plan:
        o = self.options
        return Plan(
            metadata=self.metadata,
            directory=self.source.directory,
            kind=self.source.kind,
            segments=self.segments,
            batch_size=o.batch_size,
            drop_remainder=o.drop_remainder,
            shuffle=o.shuffle,
            shuffle_buffer=o.shuffle_buffer,
            interleave=o.interleave,
            repeat=o.repeat,
            geometry=self.geometry,
        )

    # ---- facts

    @property
    def fingerprint(self) -> str:
        return self.metadata.fingerprint

    @property
    def epoch_size(self) -> int:
        """Examples delivered per full epoch (fewer with drop_remainder)."""
        return self.geometry.epoch_size

    @property
    def order(self) -> OrderOptions:
        o = self.options
        return OrderOptions(
            batch_size=self.geometry.batch_size,
            drop_remainder=o.drop_remainder,
            shuffle=o.shuffle,
            shuffle_buffer=o.shuffle_buffer if o.shuffle else 0,
            interleave=o.interleave if o.shuffle else 1,
        )

    def _shard_indexes(self) -> Any:
        """The indexes of the selected shards (None when read without them)."""
        return self._readers.shard_indexes()

    # ---- state

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

    def adopt(self, state: StateLike) -> LoaderState:
        """Parse a saved state, take its seed if this loader drew one (seed=None), and check it
        was saved for this dataset, split and order."""
        parsed = parse_state(state)
        if self._seed_drawn:
            self.seed = parsed.seed
            self._seed_drawn = False
        check_compatible(parsed, self.initial_state())
        return parsed

    def normalize_state(self, state: LoaderState) -> LoaderState:
        """Move a position at the end of an epoch to the start of the next."""
        return self.geometry.normalize(state)

    def advance(self, state: LoaderState, num_batches: int) -> LoaderState:
        """The state after `num_batches` more batches (pure arithmetic: the stream is deterministic)."""
        return self.geometry.advance(state, num_batches)

    def state_after(self, num_batches: int, start: StateLike | None = None) -> LoaderState:
        """The state after `num_batches` batches from `start` (default: the beginning) — e.g. from a Keras step count."""
        begin = self.initial_state() if start is None else self.adopt(start)
        return self.advance(self.normalize_state(begin), num_batches)

    def num_batches(self, state: LoaderState | None = None) -> int | None:
        """Batches the dataset from `state` yields; None when it repeats forever."""
        return self.geometry.num_batches(state or self.initial_state())

    # ---- reading

    def diagnose(self, err: Exception) -> DatasetError:
        """Turn a TensorFlow read/parse error into a DatasetError that names the bad shard."""
        return diagnose(
            err,
            self.segments,
            self.source.kind,
            self.metadata.compression,
            f"{self.source.origin} split {self.split!r}",
            self._opened.identities,
        )

    def dataset(self, state: StateLike | None = None) -> Any:
        """The `tf.data.Dataset` of batches, from the beginning or from `state`."""
        tf = tf_module()
        st = self.initial_state() if state is None else self.adopt(state)
        st = self.normalize_state(st)
        ds = self._readers.epochs(st)
        n = self.num_batches(st)
        if n is not None:
            ds = ds.apply(tf.data.experimental.assert_cardinality(n))
        finish = finisher(
            self.features,
            snapshot=self.source.kind == "snapshot",
            ragged=self.options.ragged,
            supervised=self.options.supervised,
        )
        npc = self.options.num_parallel_calls
        ds = ds.map(finish, num_parallel_calls=npc, deterministic=True if npc else None)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options)

    def iterator(self, state: StateLike | None = None) -> Any:
        """A `DatasetIterator` (resumable, trackable by `tf.train.Checkpoint`)."""
        return make_iterator(self, None if state is None else self.adopt(state))

    @property
    def element_spec(self) -> Any:
        return self.dataset().element_spec


def load(
    source: str | os.PathLike[str],
    split: str = "train",
    *,
    state: StateLike | None = None,
    options: LoadOptions | None = None,
    **kwargs: Any,
) -> Any:
    """A serialized dataset as a `tf.data.Dataset` of batches.

    source: a dataset directory (TFRecord shards + metadata.json, or a snapshot written by
        `dataops export --format snapshot`); or, with `repo=`, a git revision (tag, branch,
        commit) of that DVC repository, whose dataset at `path=` (default `data/tfrecords`)
        is read through DVC without a checkout and cached under `cache_dir`.
    split: `"train"`, `"train[:10%]"`, `"train[100:200]"`, `"train+validation"`, ...
    state: continue from a `LoaderState` (or its dict/JSON) saved by a `DatasetIterator`.
    options / kwargs: a `LoadOptions`, and/or its fields as keywords (see `LoadOptions`):
        batch_size=32, shuffle=False, seed=None (random, recorded in the state),
        shuffle_buffer=10000, interleave=8, repeat=1 (None: forever), drop_remainder=False,
        cache=False, ragged=True (False: pad sequences with 0), features=None (all),
        supervised=None or (x, y), num_parallel_calls=None, verify="quick", repo=None,
        path="data/tfrecords", cache_dir=None.
    """
    return Loader(source, split, options=options, **kwargs).dataset(state)
