"""Tensor features: a fixed-shape array of numbers per row, stored as a flat fixed-size list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import TensorFeature
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo


class Tensor(Feature[TensorFeature, None]):
    model_type = TensorFeature

    def infos(self, state: State | None) -> list[FeatureInfo]:
        f = self.model
        return [
            FeatureInfo(
                name=f.name, kind="tensor", dtype=f.dtype, shape=list(f.shape), encoding="none"
            )
        ]

    def read(self, batch: Batch) -> pa.Array:
        """The column as a fixed-size list of `prod(shape)` values; rows of another size are bad."""
        f = self.model
        name, col = batch.column(f)
        arr = col.combine_chunks()
        width = int(np.prod(f.shape)) if f.shape else 1
        np_dtype = np.float32 if f.dtype == "float32" else np.int64
        n = len(arr)
        if (
            pa.types.is_list(arr.type)
            or pa.types.is_fixed_size_list(arr.type)
            or pa.types.is_large_list(arr.type)
        ):
            lengths = pc.list_value_length(arr).fill_null(-1).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(lengths != width):
                got = "missing" if lengths[i] < 0 else f"{lengths[i]} values"
                batch.fail(
                    int(i),
                    name,
                    "wrong_shape",
                    f"expected {width} values for shape {f.shape}, got {got}",
                )
            good = lengths == width
            flat = np.zeros((n, width), dtype=np_dtype)
            if good.any():
                vals = pc.list_flatten(arr.filter(pa.array(good))).to_numpy(zero_copy_only=False)
                flat[good] = vals.astype(np_dtype).reshape(-1, width)
        elif width == 1 and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
            for i in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
                batch.fail(int(i), name, "missing_value", "value is missing")
            flat = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np_dtype).reshape(n, 1)
        else:
            raise DatasetError(
                f"column '{name}' has type {arr.type}; feature '{f.name}' (tensor {f.shape}) needs lists of numbers"
            )
        value_type = pa.float32() if f.dtype == "float32" else pa.int64()
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), value_type), width)

    def check(self, batch: Batch) -> None:
        self.read(batch)

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        return {self.name: self.read(batch)}

    def serving_spec(self) -> Any:
        """A batch of arrays of the feature's shape."""
        import tensorflow as tf

        dtype = tf.float32 if self.model.dtype == "float32" else tf.int64
        return tf.TensorSpec([None, *self.model.shape], dtype, name=self.source_column)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        return lambda x: {self.name: x}
