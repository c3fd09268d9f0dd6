"""Categorical features: a string per row mapped to its id in the sorted train vocabulary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.config import CategoricalFeature
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, State
from dataops.metadata import FeatureInfo


class Categorical(Feature[CategoricalFeature, "Counter[str]"]):
    """Ids 0..k-1 are the train values in sorted order; id k (the vocabulary size) is out of
    vocabulary. A value not in the vocabulary follows `unknown`, a missing one `missing`."""

    model_type = CategoricalFeature

    def infos(self, state: State | None) -> list[FeatureInfo]:
        vocab = list((state or {})["vocabulary"])
        return [
            FeatureInfo(
                name=self.name,
                kind="tensor",
                dtype="int64",
                shape=[],
                encoding="none",
                num_classes=len(vocab),
                vocabulary=vocab,
            )
        ]

    def check(self, batch: Batch) -> None:
        name, arr = batch.text_array(self.model)  # refuses a column of another type
        if self.model.missing_policy != "error":
            return
        if arr is None:
            self._fail_missing(batch, name, batch.strings(self.model)[1])
        elif arr.null_count:
            for row in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
                batch.fail(int(row), name, "missing_value", "value is missing")

    @staticmethod
    def _fail_missing(batch: Batch, name: str, vals: list[str | None]) -> None:
        for row, val in enumerate(vals):
            if val is None:
                batch.fail(row, name, "missing_value", "value is missing")

    def empty_partial(self) -> Counter[str]:
        return Counter()

    def partial_fit(self, batch: Batch, use: np.ndarray) -> Counter[str]:
        _, arr = batch.text_array(self.model)
        if arr is not None:  # text: counted by Arrow
            counts = pc.value_counts(arr.filter(pa.array(use, pa.bool_())).drop_null())
            values = counts.field("values").to_pylist()
            return Counter(dict(zip(values, counts.field("counts").to_pylist(), strict=True)))
        _, vals = batch.strings(self.model)
        return Counter(v for v, t in zip(vals, use, strict=True) if t and v is not None)

    def merge(self, a: Counter[str], b: Counter[str]) -> Counter[str]:
        a.update(b)
        return a

    def finalize(self, partial: Counter[str]) -> State:
        vocab = sorted(partial)
        if not vocab:
            raise DatasetError(
                f"feature '{self.name}': no value in the train split to build its vocabulary"
            )
        return {"vocabulary": vocab}

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        f = self.model
        name, arr = batch.text_array(f)
        if arr is not None:  # text: looked up by Arrow; bad rows marked in row order, as below
            vocab = pa.array((state or {})["vocabulary"], arr.type)
            found = pc.index_in(arr, value_set=vocab)
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            if f.unknown == "error":
                unknown = found.is_null().to_numpy(zero_copy_only=False) & valid
                for row in np.flatnonzero(unknown).tolist():
                    val = arr[int(row)].as_py()
                    batch.fail(
                        int(row),
                        name,
                        "unknown_category",
                        f"value {val!r} is not in the train vocabulary",
                    )
            if f.missing_policy == "error":
                for row in np.flatnonzero(~valid).tolist():
                    batch.fail(int(row), name, "missing_value", "value is missing")
            ids = pc.fill_null(found, len(vocab)).to_numpy(zero_copy_only=False)
            return {f.name: pa.array(ids.astype(np.int64), pa.int64())}
        name, vals = batch.strings(f)
        index = {v: k for k, v in enumerate((state or {})["vocabulary"])}
        oov = len(index)
        ids = np.empty(len(vals), dtype=np.int64)
        for row, val in enumerate(vals):
            got = index.get(val) if val is not None else None
            if got is None:
                if val is not None and f.unknown == "error":
                    batch.fail(
                        row,
                        name,
                        "unknown_category",
                        f"value {val!r} is not in the train vocabulary",
                    )
                got = oov
            ids[row] = got
        if f.missing_policy == "error":
            self._fail_missing(batch, name, vals)
        return {f.name: pa.array(ids, pa.int64())}

    def serving_spec(self) -> Any:
        import tensorflow as tf

        return tf.TensorSpec([None], tf.string, name=self.source_column)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        """The vocabulary id of each string; any other string gets the out-of-vocabulary id
        (the vocabulary size). Serving cannot refuse a row: under `unknown: error` or
        `missing: error` an unknown value also maps to that id. Pass a missing value as ''."""
        import tensorflow as tf

        vocab = list((state or {})["vocabulary"])
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab, tf.string), tf.range(len(vocab), dtype=tf.int64)
            ),
            default_value=len(vocab),
        )
        return lambda x: {self.name: table.lookup(x)}
