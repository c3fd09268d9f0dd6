"""Numeric features: one number per row; float32 ones imputed and standardized with train statistics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import NumericFeature
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo


@dataclass(frozen=True)
class Moments:
    """Mergeable statistics of float64 values: count, mean and M2 (the sum of squared
    deviations from the mean); the variance is population variance, `M2 / count` (ddof=0).

    `of` computes a batch's moments with the two-pass algorithm (the mean, then the squared
    deviations from it): as stable as Welford's one-value-at-a-time update, but vectorized,
    and for one batch equal to `np.mean`/`np.var` to the bit. `merge` combines two partials
    with Chan, Golub and LeVeque's pairwise update. Neither subtracts two large sums, so a
    large offset (1.7e9 + N(0, 5)) loses nothing. Merging is not associative to the last
    bit: the same values cut into the same parts and merged in the same order give the
    same bits, whichever process computed each part.
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


class Numeric(Feature[NumericFeature, "Moments | None"]):
    model_type = NumericFeature

    @property
    def fits(self) -> bool:
        return self.model.dtype == "float32"

    def infos(self, state: State | None) -> list[FeatureInfo]:
        f = self.model
        return [FeatureInfo(name=f.name, kind="tensor", dtype=f.dtype, shape=[], encoding="none")]

    def read(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Values as float64 (int64 features: exact ints) and a mask of missing values."""
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

    def empty_partial(self) -> Moments | None:
        return Moments() if self.fits else None

    def partial_fit(self, batch: Batch, use: np.ndarray) -> Moments | None:
        if not self.fits:
            return None
        v, missing = self.read(batch)
        return Moments.of(v[use & ~missing])

    def merge(self, a: Moments | None, b: Moments | None) -> Moments | None:
        return a.merge(b) if a is not None and b is not None else None

    def finalize(self, partial: Moments | None) -> State | None:
        if partial is None:
            return None
        f, n = self.model, partial.count
        if n == 0 and (f.impute == "mean" or f.standardize):
            raise DatasetError(f"feature '{f.name}': no value in the train split to fit its mean")
        std = math.sqrt(partial.variance)
        return {"count": n, "mean": partial.mean, "std": std if std > 0 else 1.0}

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
