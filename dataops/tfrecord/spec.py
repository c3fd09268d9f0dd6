"""The TensorFlow parsing spec of a dataset, derived from its `metadata.json`.

Users never write a feature description: `parse_spec(meta)` gives the `tf.io.parse_example`
spec, and `decode_batch` turns a parsed batch into the tensors a model takes (images
decoded, fixed shapes restored). What depends on a feature's kind lives in
`dataops.features.stored`. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from dataops.features.stored import stored_feature
from dataops.metadata import DatasetMetadata, FeatureInfo


def feature_spec(f: FeatureInfo) -> Any:
    return stored_feature(f).parse_spec()


def parse_spec(meta: DatasetMetadata) -> dict[str, Any]:
    """`{feature name: tf.io.*Feature}` for `tf.io.parse_example`."""
    return {f.name: feature_spec(f) for f in meta.features}


def decode_feature(f: FeatureInfo, value: Any) -> Any:
    """Decode one parsed batch column (leading batch dimension) into its final tensor."""
    return stored_feature(f).decode(value)


def dense_feature(f: FeatureInfo, value: Any) -> Any:
    """A decoded batch column as a dense tensor (sequences padded with zeros)."""
    return stored_feature(f).dense(value)


def decode_batch(meta: DatasetMetadata, parsed: dict[str, Any]) -> dict[str, Any]:
    return {f.name: decode_feature(f, parsed[f.name]) for f in meta.features}


def compression_type(meta: DatasetMetadata) -> str:
    """The `compression_type` argument of `tf.data.TFRecordDataset`."""
    return {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[meta.compression]
