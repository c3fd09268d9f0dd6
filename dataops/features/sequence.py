"""Sequence features: a variable-length list of numbers per row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.config import SequenceFeature
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo


class Sequence(Feature[SequenceFeature, None]):
    model_type = SequenceFeature

    def infos(self, state: State | None) -> list[FeatureInfo]:
        f = self.model
        return [
            FeatureInfo(name=f.name, kind="sequence", dtype=f.dtype, shape=[None], encoding="none")
        ]

    def read(self, batch: Batch) -> pa.Array:
        """The column as a list array of the feature's dtype; a missing list is a bad row."""
        f = self.model
        name, col = batch.column(f)
        arr = col.combine_chunks()
        value_type = pa.float32() if f.dtype == "float32" else pa.int64()
        if not (
            pa.types.is_list(arr.type)
            or pa.types.is_large_list(arr.type)
            or pa.types.is_fixed_size_list(arr.type)
        ):
            raise DatasetError(
                f"column '{name}' has type {arr.type}; feature '{f.name}' (sequence) needs lists"
            )
        if not (
            pa.types.is_integer(arr.type.value_type)
            or pa.types.is_floating(arr.type.value_type)
            or pa.types.is_null(arr.type.value_type)
        ):
            raise DatasetError(
                f"column '{name}' holds lists of {arr.type.value_type}; feature '{f.name}' needs numbers"
            )
        if f.dtype == "int64" and pa.types.is_floating(arr.type.value_type):
            raise DatasetError(f"column '{name}' holds floats; feature '{f.name}' wants int64")
        for i in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
            batch.fail(int(i), name, "missing_value", "sequence is missing")
        arr = arr.fill_null(pa.scalar([], arr.type)) if arr.null_count else arr
        return arr.cast(pa.list_(value_type))

    def check(self, batch: Batch) -> None:
        self.read(batch)

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        return {self.name: self.read(batch)}

    def serving_spec(self) -> Any:
        import tensorflow as tf

        dtype = tf.float32 if self.model.dtype == "float32" else tf.int64
        return tf.RaggedTensorSpec([None, None], dtype, ragged_rank=1)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        return lambda x: {self.name: x}
