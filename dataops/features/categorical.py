"""Categorical features: a string per row mapped to its id in the sorted train vocabulary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

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
        name, vals = batch.strings(self.model)
        if self.model.missing_policy == "error":
            self._fail_missing(batch, name, vals)

    @staticmethod
    def _fail_missing(batch: Batch, name: str, vals: list[str | None]) -> None:
        for row, val in enumerate(vals):
            if val is None:
                batch.fail(row, name, "missing_value", "value is missing")

    def empty_partial(self) -> Counter[str]:
        return Counter()

    def partial_fit(self, batch: Batch, use: np.ndarray) -> Counter[str]:
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
