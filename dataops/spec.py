"""The TensorFlow parsing spec of a dataset, derived from its `metadata.json`.

Users never write a feature description: `parse_spec(meta)` gives the `tf.io.parse_example`
spec, and `decode_batch` turns a parsed batch into the tensors a model takes (images
decoded, fixed shapes restored). TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from dataops.metadata import DatasetMetadata, FeatureInfo

TF_DTYPES = {"float32": "float32", "int64": "int64", "string": "string", "uint8": "string"}


def feature_spec(f: FeatureInfo) -> Any:
    import tensorflow as tf

    if f.wire == "bytes":
        return tf.io.FixedLenFeature([], tf.string)
    dtype = tf.float32 if f.dtype == "float32" else tf.int64
    if f.kind == "sequence":
        return tf.io.RaggedFeature(dtype=dtype, row_splits_dtype=tf.int64)
    return tf.io.FixedLenFeature([int(d or 0) for d in f.shape], dtype)


def parse_spec(meta: DatasetMetadata) -> dict[str, Any]:
    """`{feature name: tf.io.*Feature}` for `tf.io.parse_example`."""
    return {f.name: feature_spec(f) for f in meta.features}


def decode_feature(f: FeatureInfo, value: Any) -> Any:
    """Decode one parsed batch column (leading batch dimension) into its final tensor."""
    import tensorflow as tf

    if f.kind != "image":
        return value
    h, w, c = (int(d or 0) for d in f.shape)
    if f.encoding == "raw":
        return tf.reshape(tf.io.decode_raw(value, tf.uint8), [-1, h, w, c])
    return tf.map_fn(
        lambda b: tf.ensure_shape(tf.io.decode_png(b, channels=c), [h, w, c]),
        value,
        fn_output_signature=tf.TensorSpec([h, w, c], tf.uint8),
    )


def decode_batch(meta: DatasetMetadata, parsed: dict[str, Any]) -> dict[str, Any]:
    return {f.name: decode_feature(f, parsed[f.name]) for f in meta.features}


def compression_type(meta: DatasetMetadata) -> str:
    """The `compression_type` argument of `tf.data.TFRecordDataset`."""
    return {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[meta.compression]
