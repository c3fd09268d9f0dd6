"""Key (passthrough) features: the row's string, stored as UTF-8 text unchanged; a missing one is a bad row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import PassthroughFeature
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo


class Key(Feature[PassthroughFeature, None]):
    model_type = PassthroughFeature

    def infos(self, state: State | None) -> list[FeatureInfo]:
        return [
            FeatureInfo(name=self.name, kind="text", dtype="string", shape=[], encoding="utf-8")
        ]

    def _read(self, batch: Batch) -> list[str | None]:
        name, vals = batch.strings(self.model)
        for row, val in enumerate(vals):
            if val is None:
                batch.fail(row, name, "missing_value", "value is missing")
        return vals

    def _read_text(self, batch: Batch) -> pa.Array | None:
        """The column when stored as text (missing rows marked bad, in row order); None when
        it holds integers (then `_read`)."""
        name, arr = batch.text_array(self.model)
        if arr is not None and arr.null_count:
            for row in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
                batch.fail(int(row), name, "missing_value", "value is missing")
        return arr

    def check(self, batch: Batch) -> None:
        if self._read_text(batch) is None:
            self._read(batch)

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        arr = self._read_text(batch)
        if arr is not None:
            return {self.name: pc.fill_null(arr, "").cast(pa.string())}
        return {self.name: pa.array([v or "" for v in self._read(batch)], pa.string())}

    def serving_spec(self) -> Any:
        import tensorflow as tf

        return tf.TensorSpec([None], tf.string, name=self.source_column)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        return lambda x: {self.name: x}
