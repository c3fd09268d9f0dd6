"""How a stored feature is read back: one class per `kind` of a `metadata.json` feature.

Preprocess turns each feature of `params.yaml` into one or more stored features
(`FeatureInfo`s) of kind `tensor`, `sequence`, `text`, `bytes` or `image`. Whatever reads a
dataset asks the stored feature for what depends on its kind: the `tf.io.parse_example` spec,
the decoding of a parsed batch, the Arrow type and column of a Parquet export, the HDF5
layout, and the statistics validate checks. TensorFlow, NumPy, pyarrow and h5py are imported
inside the methods, so importing this module is cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dataops.metadata import FeatureInfo


def _dims(info: FeatureInfo) -> list[int]:
    return [int(d or 0) for d in info.shape]


_TFDS = "tensorflow_datasets.core.features."


def tfds_tensor(shape: list[int | None], dtype: str, encoding: str = "none") -> dict[str, Any]:
    """TFDS's JSON of a `Tensor` feature (`None` dimensions as -1)."""
    dims = {"dimensions": [str(-1 if d is None else d) for d in shape]} if shape else {}
    return {
        "pythonClassName": _TFDS + "tensor_feature.Tensor",
        "tensor": {"dtype": dtype, "encoding": encoding, "shape": dims},
    }


def _np_dtype(info: FeatureInfo) -> Any:
    """The NumPy dtype of a fixed-shape value's elements."""
    import numpy as np

    return {"float32": np.float32, "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16}[
        info.dtype
    ]


class StoredFeature:
    """What every stored feature does unless its kind says otherwise (a fixed-shape value)."""

    kind: ClassVar[str]

    def __init__(self, info: FeatureInfo) -> None:
        self.info = info

    # --- TensorFlow ---------------------------------------------------------------------

    def parse_spec(self) -> Any:
        """The `tf.io.parse_example` feature of one example."""
        import tensorflow as tf

        if self.info.wire == "bytes":
            return tf.io.FixedLenFeature([], tf.string)
        return self._value_spec(tf, tf.float32 if self.info.dtype == "float32" else tf.int64)

    def _value_spec(self, tf: Any, dtype: Any) -> Any:
        return tf.io.FixedLenFeature(_dims(self.info), dtype)

    def decode(self, value: Any) -> Any:
        """A parsed batch column (batch dimension first) as the tensor a model takes."""
        return value

    def dense(self, value: Any) -> Any:
        """A decoded batch column as a dense tensor (the loader's `ragged=False`)."""
        return value

    # --- Arrow (Parquet export) -----------------------------------------------------------

    def arrow_type(self) -> Any:
        import numpy as np
        import pyarrow as pa

        if self.info.wire == "bytes":
            return pa.binary()
        base = pa.float32() if self.info.dtype == "float32" else pa.int64()
        if self.info.shape:
            return pa.list_(base, int(np.prod(_dims(self.info))))
        return base

    def arrow_column(self, value: Any) -> Any:
        """A parsed, undecoded batch column as an Arrow array of `arrow_type()`."""
        import numpy as np
        import pyarrow as pa

        arr = value.numpy()
        if self.info.wire == "bytes":
            return pa.array(arr.tolist(), pa.binary())
        if self.info.shape:
            width = int(np.prod(_dims(self.info)))
            return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width)
        return pa.array(arr)

    # --- HDF5 export ------------------------------------------------------------------------

    def hdf5_layout(self, n: int) -> tuple[Any, tuple[int, ...]]:
        """(h5py dtype, shape) of the dataset holding `n` decoded examples."""
        import h5py
        import numpy as np

        if self.info.wire == "bytes":
            return h5py.vlen_dtype(np.uint8), (n,)
        return _np_dtype(self.info), (n, *_dims(self.info))

    def hdf5_column(self, value: Any, dtype: Any) -> Any:
        """A decoded batch column (a loader batch) as values for an HDF5 dataset of `dtype`."""
        import numpy as np

        arr = value.numpy()
        if self.info.wire == "bytes":
            col = np.empty(len(arr), dtype=object)
            col[:] = [np.frombuffer(x, np.uint8) for x in arr.tolist()]
            return col
        return arr

    # --- TFDS (features.json) -----------------------------------------------------------------

    def tfds_json(self) -> dict[str, Any]:
        """This feature as TFDS's `FeatureConnector.to_json()` writes it (`dataops.tfrecord.tfds_info`)."""
        return tfds_tensor(self.info.shape, self.info.dtype)

    # --- validation statistics --------------------------------------------------------------

    def scan(self, value: Any, stats: dict[str, Any]) -> None:
        """Add a parsed batch column to this feature's validation statistics, kept in
        `stats[name]`: `non_finite` counts the NaN and Inf of float values; `values` keeps the
        batches of a float scalar (for its histogram)."""
        import numpy as np

        info = self.info
        if info.dtype == "float32" and info.wire == "float":
            flat = value.flat_values if hasattr(value, "flat_values") else value
            arr = flat.numpy()
            s = stats.setdefault(info.name, {"non_finite": 0})
            s["non_finite"] += int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            if not info.shape:
                s.setdefault("values", []).append(arr.reshape(-1))


class StoredTensor(StoredFeature):
    """A fixed-shape tensor (numbers, class ids, float pixels)."""

    kind = "tensor"

    def scan(self, value: Any, stats: dict[str, Any]) -> None:
        """Also, for int64 scalars (labels, class ids): `min`, `max` and `counts` of each value."""
        import numpy as np

        super().scan(value, stats)
        info = self.info
        if info.wire == "int64" and not info.shape:
            arr = value.numpy()
            s = stats.setdefault(info.name, {"min": None, "max": None, "counts": {}})
            if arr.size:
                lo, hi = int(arr.min()), int(arr.max())
                s["min"] = lo if s["min"] is None else min(s["min"], lo)
                s["max"] = hi if s["max"] is None else max(s["max"], hi)
                vals, cnts = np.unique(arr, return_counts=True)
                for v, c in zip(vals.tolist(), cnts.tolist(), strict=True):
                    s["counts"][v] = s["counts"].get(v, 0) + c


class StoredSequence(StoredFeature):
    """A variable-length 1-D list: a `tf.RaggedTensor` when parsed."""

    kind = "sequence"

    def _value_spec(self, tf: Any, dtype: Any) -> Any:
        return tf.io.RaggedFeature(dtype=dtype, row_splits_dtype=tf.int64)

    def tfds_json(self) -> dict[str, Any]:
        return {
            "pythonClassName": _TFDS + "sequence_feature.Sequence",
            "sequence": {"feature": tfds_tensor([], self.info.dtype), "length": "-1"},
        }

    def dense(self, value: Any) -> Any:
        """Padded with zeros to the longest sequence of the batch."""
        import tensorflow as tf

        if isinstance(value, tf.RaggedTensor):
            return value.to_tensor(default_value=tf.zeros([], value.dtype))
        return value

    def arrow_type(self) -> Any:
        import pyarrow as pa

        if self.info.wire == "bytes":
            return pa.binary()
        return pa.list_(pa.float32() if self.info.dtype == "float32" else pa.int64())

    def arrow_column(self, value: Any) -> Any:
        import numpy as np
        import pyarrow as pa

        splits = value.row_splits.numpy().astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(splits), pa.array(value.flat_values.numpy()))

    def hdf5_layout(self, n: int) -> tuple[Any, tuple[int, ...]]:
        import h5py
        import numpy as np

        return h5py.vlen_dtype(np.int64 if self.info.dtype == "int64" else np.float32), (n,)

    def hdf5_column(self, value: Any, dtype: Any) -> Any:
        import numpy as np

        vals = value.to_list()
        col = np.empty(len(vals), dtype=object)
        col[:] = [np.asarray(x, dtype=dtype.metadata["vlen"]) for x in vals]
        return col


class StoredText(StoredFeature):
    """A UTF-8 string."""

    kind = "text"

    def tfds_json(self) -> dict[str, Any]:
        return {"pythonClassName": _TFDS + "text_feature.Text", "text": {}}

    def arrow_type(self) -> Any:
        import pyarrow as pa

        return pa.string()

    def arrow_column(self, value: Any) -> Any:
        import pyarrow as pa

        return pa.array([b.decode("utf-8") for b in value.numpy().tolist()], pa.string())

    def hdf5_layout(self, n: int) -> tuple[Any, tuple[int, ...]]:
        import h5py

        return h5py.string_dtype("utf-8"), (n,)

    def hdf5_column(self, value: Any, dtype: Any) -> Any:
        return [x.decode("utf-8") for x in value.numpy().tolist()]


class StoredBytes(StoredFeature):
    """Raw bytes."""

    kind = "bytes"

    def tfds_json(self) -> dict[str, Any]:
        return tfds_tensor([], "string")


class StoredImage(StoredFeature):
    """An image of fixed shape [height, width, channels], stored as PNG (8- or 16-bit) or raw
    uint8 / uint16 (little-endian) pixels."""

    kind = "image"

    def tfds_json(self) -> dict[str, Any]:
        """PNG: TFDS's Image (8- or 16-bit); raw pixels: a Tensor of `encoding: bytes`, which TFDS
        decodes with `tf.io.decode_raw` (little-endian, as stored)."""
        if self.info.encoding == "raw":
            return tfds_tensor(self.info.shape, self.info.dtype, "bytes")
        return {
            "pythonClassName": _TFDS + "image_feature.Image",
            "image": {
                "dtype": self.info.dtype,
                "encodingFormat": "png",
                "shape": {"dimensions": [str(d) for d in self.info.shape]},
            },
        }

    def decode(self, value: Any) -> Any:
        """Decoded to uint8 or uint16, the feature's dtype."""
        import tensorflow as tf

        h, w, c = _dims(self.info)
        dtype = tf.uint16 if self.info.dtype == "uint16" else tf.uint8
        if self.info.encoding == "raw":
            return tf.reshape(tf.io.decode_raw(value, dtype, little_endian=True), [-1, h, w, c])
        return tf.map_fn(
            lambda b: tf.ensure_shape(tf.io.decode_png(b, channels=c, dtype=dtype), [h, w, c]),
            value,
            fn_output_signature=tf.TensorSpec([h, w, c], dtype),
        )

    def hdf5_layout(self, n: int) -> tuple[Any, tuple[int, ...]]:
        return _np_dtype(self.info), (n, *_dims(self.info))

    def hdf5_column(self, value: Any, dtype: Any) -> Any:
        return value.numpy()  # decoded pixels


STORED_CLASSES: dict[str, type[StoredFeature]] = {
    cls.kind: cls for cls in (StoredTensor, StoredSequence, StoredText, StoredBytes, StoredImage)
}


def stored_feature(info: FeatureInfo) -> StoredFeature:
    """The reader-side behaviour of a `metadata.json` feature, chosen by its kind."""
    return STORED_CLASSES[info.kind](info)
