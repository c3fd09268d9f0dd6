"""Numeric features: one number per row; float32 ones imputed and standardized with train statistics."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import NumericFeature
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo

BLOCK_ROWS = 4096
"""Rows of the snapshot per statistics block: block `k` is snapshot rows `[k * BLOCK_ROWS,
(k + 1) * BLOCK_ROWS)`. Changing it changes the last bits of fitted means and stds (and so
`state.json`/`metadata.json`), never which rows are fitted."""


@dataclass(frozen=True)
class Moments:
    """Mergeable statistics of float64 values: count, mean and M2 (the sum of squared
    deviations from the mean); the variance is population variance, `M2 / count` (ddof=0).

    `of` computes the moments of some values with the two-pass algorithm (the mean, then the
    squared deviations from it): as stable as Welford's one-value-at-a-time update, but
    vectorized, and equal to `np.mean`/`np.var` to the bit. `merge` combines two with Chan,
    Golub and LeVeque's pairwise update. Neither subtracts two large sums, so a large offset
    (1.7e9 + N(0, 5)) loses nothing. Merging is not associative to the last bit: the same
    values cut into the same parts and merged in the same order give the same bits. What cuts
    and orders them independently of any batch size is `BlockMoments`.
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        n = int(x.size)
        if n == 0:
            return cls()
        x = np.asarray(x, dtype=np.float64)
        mean = np.sum(x) / n
        d = x - mean
        with np.errstate(over="ignore"):  # an overflow (inf) is refused by `Numeric.finalize`
            return cls(n, float(mean), float(np.sum(d * d)))

    def merge(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return Moments(n, mean, m2)

    @property
    def variance(self) -> float:
        """Population variance (ddof=0); 0.0 for no values."""
        return self.m2 / self.count if self.count else 0.0


@dataclass(frozen=True, eq=False)
class _Pending:
    """The values seen so far of a block not yet covered in full."""

    rows: int  # snapshot rows of the block covered so far (fitted or not)
    index: np.ndarray  # int64: the snapshot row of each value, ascending
    values: np.ndarray  # float64


@dataclass(frozen=True, eq=False)
class BlockMoments:
    """The partial fit of a numeric feature: `Moments` per aligned block of snapshot rows, so
    its bits depend on which rows are fitted and on their values, never on how the rows were
    cut into batches, bundles or workers.

    Why: the fingerprint leaves batch sizes out because they change no output byte; moments
    merged batch by batch would change in their last bits with `preprocess.batch_rows`. So the
    rows are cut by a fixed rule instead: block `k` holds snapshot rows `[k * B, (k + 1) * B)`
    (`B = block_rows`, `BLOCK_ROWS` by default). The fitted moments are, by definition,

        fold(Moments.merge, [Moments.of(values of block k, in row order) for k = 0, 1, ...])

    a sequential Chan merge in block order of two-pass block moments: as stable as both (std of
    1.7e9 + N(0, 5) right to ~1e-12), vectorized within a block, and one merge per 4096 rows.
    (Exactly rounded sums, e.g. `math.fsum` partials, would also be partition-free, but need a
    Python-level pass per value and still a shift for the squares.)

    A partial holds what it can already fold: `prefix` is the fold of blocks `0 ..
    prefix_blocks - 1` (all covered), `done` the moments of other covered blocks, `pending`
    the values (with their snapshot rows) of blocks covered in part, fewer than `B` per block.
    `merge` of two partials over *disjoint* row sets, in any order or grouping, gives the same
    bits as one pass: pending values are concatenated and sorted by row, a block becomes
    `Moments` once its `B` rows are all covered, and complete blocks are folded onto `prefix`
    in block order. The snapshot's last, short block stays pending until `total()`. Memory: a
    partial built in row order holds one `Moments` plus < B values.
    """

    block_rows: int = BLOCK_ROWS
    prefix_blocks: int = 0
    prefix: Moments = field(default_factory=Moments)
    done: Mapping[int, Moments] = field(default_factory=dict)
    pending: Mapping[int, _Pending] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        start: int,
        num_rows: int,
        index: np.ndarray,
        values: np.ndarray,
        block_rows: int = BLOCK_ROWS,
    ) -> BlockMoments:
        """The partial of snapshot rows `[start, start + num_rows)`, whose fitted values are
        `values` at the ascending snapshot rows `index` (the other rows are not fitted)."""
        index = np.asarray(index, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if index.shape != values.shape:
            raise ValueError(f"{index.size} row numbers for {values.size} values")
        if index.size and (index[0] < start or index[-1] >= start + num_rows):
            raise ValueError(f"a fitted row lies outside rows [{start}, {start + num_rows})")
        b = block_rows
        done: dict[int, Moments] = {}
        pending: dict[int, _Pending] = {}
        end = start + num_rows
        for k in range(start // b, -(-end // b)) if num_rows else ():
            lo, hi = max(start, k * b), min(end, (k + 1) * b)
            i, j = np.searchsorted(index, [lo, hi])
            if hi - lo == b:
                done[k] = Moments.of(values[i:j].copy())
            else:
                pending[k] = _Pending(hi - lo, index[i:j].copy(), values[i:j].copy())
        return cls(b, 0, Moments(), {}, {})._with(0, Moments(), done, pending)

    def _with(
        self,
        prefix_blocks: int,
        prefix: Moments,
        done: dict[int, Moments],
        pending: dict[int, _Pending],
    ) -> BlockMoments:
        """A partial from its parts, with the complete blocks after the prefix folded in."""
        while prefix_blocks in done:
            prefix = prefix.merge(done.pop(prefix_blocks))
            prefix_blocks += 1
        return BlockMoments(self.block_rows, prefix_blocks, prefix, done, pending)

    def merge(self, other: BlockMoments) -> BlockMoments:
        """The partial of both row sets, which must be disjoint (any order: same bits)."""
        if other.block_rows != self.block_rows:
            raise ValueError(f"block sizes differ: {self.block_rows} and {other.block_rows}")
        if self.prefix_blocks and other.prefix_blocks:
            raise ValueError("both partials cover the first block: their rows overlap")
        first = self if self.prefix_blocks else other
        prefix_blocks, prefix = first.prefix_blocks, first.prefix
        done = dict(self.done)
        pending = dict(self.pending)
        for k, m in other.done.items():
            if k in done or k in pending:
                raise ValueError(f"both partials cover rows of block {k}")
            done[k] = m
        for k, p in other.pending.items():
            if k in done:
                raise ValueError(f"both partials cover rows of block {k}")
            if k in pending:
                q = pending.pop(k)
                rows = q.rows + p.rows
                if rows > self.block_rows:
                    raise ValueError(f"both partials cover rows of block {k}")
                if q.index.size and p.index.size and p.index[0] < q.index[-1]:
                    q, p = p, q  # rows in order: concatenating is enough (else sort below)
                index = np.concatenate([q.index, p.index])
                values = np.concatenate([q.values, p.values])
                if index.size > 1 and not bool(np.all(index[1:] > index[:-1])):
                    order = np.argsort(index, kind="stable")
                    index, values = index[order], values[order]
                p = _Pending(rows, index, values)
                if rows == self.block_rows:
                    done[k] = Moments.of(p.values)
                    continue
            pending[k] = p
        if any(k < prefix_blocks for k in (*done, *pending)):
            raise ValueError(f"both partials cover rows of blocks 0..{prefix_blocks - 1}")
        return self._with(prefix_blocks, prefix, done, pending)

    def total(self) -> Moments:
        """The moments of every fitted value: the fold in block order (pending blocks too)."""
        m = self.prefix
        for k in sorted({*self.done, *self.pending}):
            m = m.merge(self.done[k] if k in self.done else Moments.of(self.pending[k].values))
        return m

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockMoments):
            return NotImplemented
        return (
            (self.block_rows, self.prefix_blocks, self.prefix, dict(self.done))
            == (other.block_rows, other.prefix_blocks, other.prefix, dict(other.done))
            and self.pending.keys() == other.pending.keys()
            and all(
                p.rows == q.rows
                and np.array_equal(p.index, q.index)
                and np.array_equal(p.values, q.values)
                for p, q in ((self.pending[k], other.pending[k]) for k in self.pending)
            )
        )

    __hash__ = None  # type: ignore[assignment]


F32_MAX = float(np.finfo(np.float32).max)


class Numeric(Feature[NumericFeature, "BlockMoments | None"]):
    model_type = NumericFeature

    @property
    def fits(self) -> bool:
        return self.model.dtype == "float32"

    def infos(self, state: State | None) -> list[FeatureInfo]:
        f = self.model
        return [FeatureInfo(name=f.name, kind="tensor", dtype=f.dtype, shape=[], encoding="none")]

    def read(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Values as float64 (int64 features: exact ints) and a mask of missing values, read
        once per batch (the check and the partial fit of pass 1 share it; do not modify)."""
        return batch.memo(self, lambda: self._read(batch))

    def _read(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        f = self.model
        name, col = batch.column(f)
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        missing = arr.is_null().to_numpy(zero_copy_only=False).copy()
        target = pa.int64() if f.dtype == "int64" else pa.float64()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            try:
                values = pc.cast(arr, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out: list[Any] = []
                for i, v in enumerate(arr.to_pylist()):
                    try:
                        out.append(
                            None if v is None else (int(v) if f.dtype == "int64" else float(v))
                        )
                    except ValueError:
                        batch.fail(
                            i,
                            name,
                            "wrong_type",
                            f"{v!r} is not {'an integer' if f.dtype == 'int64' else 'a number'}",
                        )
                        out.append(None)
                values = pa.array(out, target)
                missing |= (
                    values.is_null().to_numpy(zero_copy_only=False) & ~missing & ~batch.bad.mask
                )
        elif (
            pa.types.is_integer(arr.type)
            or pa.types.is_floating(arr.type)
            or pa.types.is_boolean(arr.type)
        ):
            if f.dtype == "int64" and pa.types.is_floating(arr.type):
                raise DatasetError(f"column '{name}' holds floats; feature '{f.name}' wants int64")
            values = pc.cast(arr, target)
        else:
            raise DatasetError(
                f"column '{name}' has type {arr.type}; feature '{f.name}' ({f.kind}) needs numbers"
            )
        np_values = values.to_numpy(zero_copy_only=False)
        if f.dtype == "int64":
            np_values = (
                np.nan_to_num(np_values.astype(np.float64), nan=0).astype(np.int64)
                if values.null_count
                else np_values.astype(np.int64)
            )
        else:
            np_values = np_values.astype(np.float64)
            missing |= np.isnan(np_values)
            # inf, -inf and text beyond float64 ('1e400') have no mean, std or float32 twin:
            # bad rows (`not_finite`), never a fitted state of inf/NaN
            infinite = np.isinf(np_values)
            for row in np.flatnonzero(infinite & ~missing):
                batch.fail(int(row), name, "not_finite", f"{np_values[row]} is not a finite number")
            missing |= infinite
        return np_values, missing

    def _fail_missing(self, batch: Batch, missing: np.ndarray) -> None:
        f = self.model
        why = " (int64 features are not imputed)" if f.dtype == "int64" else " and impute is 'none'"
        for i in np.flatnonzero(missing & ~batch.bad.mask):
            batch.fail(int(i), f.column or f.name, "missing_value", "value is missing" + why)

    def check(self, batch: Batch) -> None:
        _, missing = self.read(batch)
        if self.model.dtype == "int64" or self.model.impute == "none":
            self._fail_missing(batch, missing)

    def empty_partial(self) -> BlockMoments | None:
        return BlockMoments() if self.fits else None

    def partial_fit(self, batch: Batch, use: np.ndarray) -> BlockMoments | None:
        """`BlockMoments` of the batch's used, non-missing values; its rows are snapshot rows
        `batch.start ..`, so partials of any batches merge to the same bits."""
        if not self.fits:
            return None
        v, missing = self.read(batch)
        rows = np.flatnonzero(use & ~missing)
        return BlockMoments.of(batch.start, batch.num_rows, batch.start + rows, v[rows])

    def merge(self, a: BlockMoments | None, b: BlockMoments | None) -> BlockMoments | None:
        return a.merge(b) if a is not None and b is not None else None

    def finalize(self, partial: BlockMoments | None) -> State | None:
        if partial is None:
            return None
        moments = partial.total()
        f, n = self.model, moments.count
        if n == 0 and (f.impute == "mean" or f.standardize):
            raise DatasetError(f"feature '{f.name}': no value in the train split to fit its mean")
        with np.errstate(over="ignore"):
            std = math.sqrt(moments.variance) if n else 0.0
        if not (math.isfinite(moments.mean) and math.isfinite(std)):
            raise DatasetError(
                f"feature '{f.name}': the train values are too large for float64 statistics "
                f"(mean {moments.mean:.6g}, std {std:.6g}); rescale the column"
            )
        return {"count": n, "mean": moments.mean, "std": std if std > 0 else 1.0}

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        f = self.model
        v, missing = self.read(batch)
        if f.dtype == "int64":
            self._fail_missing(batch, missing)
            return {f.name: pa.array(v, pa.int64())}
        assert state is not None  # fitted: float32 features always have a state
        if f.impute == "none":
            self._fail_missing(batch, missing)
        fill = state["mean"] if f.impute == "mean" else 0.0
        v = np.where(missing, fill, v)
        if f.standardize:
            v = (v - state["mean"]) / state["std"]
        # a finite value beyond float32 would be stored as inf: a bad row, never a silent inf
        for i in np.flatnonzero((np.abs(v) > F32_MAX) & ~missing):
            batch.fail(
                int(i),
                f.column or f.name,
                "out_of_range",
                f"{v[i]:.6g}{' (standardized)' if f.standardize else ''} is beyond float32 (|x| <= {F32_MAX:.6g})",
            )
        v = np.where(np.abs(v) > F32_MAX, 0.0, v)
        return {f.name: pa.array(v.astype(np.float32), pa.float32())}

    def serving_spec(self) -> Any:
        """float32 features: float64 values, NaN where missing (the pipeline reads float64);
        int64 features: int64 values."""
        import tensorflow as tf

        dtype = tf.int64 if self.model.dtype == "int64" else tf.float64
        return tf.TensorSpec([None], dtype, name=self.source_column)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        """The same float64 operations as `transform`, in the same order, then float32: bit
        for bit. A NaN under `impute: none` (a bad row in the pipeline) stays NaN."""
        import tensorflow as tf

        f = self.model
        if f.dtype == "int64":
            return lambda x: {f.name: x}
        assert state is not None  # fitted: float32 features always have a state
        mean, std = float(state["mean"]), float(state["std"])
        fill = mean if f.impute == "mean" else 0.0

        def serve(x: Any) -> dict[str, Any]:
            v = x
            if f.impute != "none":
                v = tf.where(tf.math.is_nan(x), tf.constant(fill, tf.float64), x)
            if f.standardize:
                v = (v - tf.constant(mean, tf.float64)) / tf.constant(std, tf.float64)
            return {f.name: tf.cast(v, tf.float32)}

        return serve
