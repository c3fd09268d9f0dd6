"""Image features: encoded image bytes decoded, converted and resized exactly (`dataops.imaging`),
and stored as PNG, raw uint8/uint16 pixels or a float32 tensor. Every image of a feature has the
same shape.

Images are decoded only when written (pass 2): `check` finds missing ones without decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.config import ImageFeature
from dataops.errors import ConfigError, DatasetError
from dataops.features.base import Batch, Feature, State, Transform
from dataops.metadata import FeatureInfo


class Image(Feature[ImageFeature, None]):
    model_type = ImageFeature

    def infos(
        self,
        state: State | None,
        shape: list[int] | None = None,
        applied: set[str] | None = None,
    ) -> list[FeatureInfo]:
        """`shape`: of the images written (default: from `size` and `channels`); `applied`: the
        conversions done on them (`dataops.imaging.decode.CONVERSIONS`), listed as the info's `decode`."""
        from dataops.imaging.store import feature_info

        return [feature_info(self.model, shape, applied or set())]

    def serving_spec(self) -> Any:
        """The encoded bytes (PNG or JPEG) of each image."""
        import tensorflow as tf

        return tf.TensorSpec([None], tf.string, name=self.source_column)

    def serving_fn(self, state: State | None) -> Callable[[Any], dict[str, Any]]:
        """Pixels as the loader decodes them from the stored feature, bit for bit
        (`dataops.imaging.twin.tf_decode_image`). Needs `size` (one shape per batch)."""
        import tensorflow as tf

        from dataops.imaging.twin import tf_decode_image

        f = self.model
        if f.size is None:
            raise ConfigError(
                f"params.yaml: key 'preprocess.features' ({f.name}): serving needs `size` "
                "(images of a batch must have one shape)"
            )
        dtype = {"uint8": tf.uint8, "uint16": tf.uint16, "float32": tf.float32}[f.dtype]
        shape = [*f.size, f.channels]

        def serve(x: Any) -> dict[str, Any]:
            out = tf.map_fn(
                lambda data: tf_decode_image(data, f),
                x,
                fn_output_signature=tf.TensorSpec(shape, dtype),
            )
            return {f.name: out}

        return serve

    def transformer(self, state: State | None) -> Transform:
        return _ImageTransform(self, state)

    def transform(self, batch: Batch, state: State | None) -> dict[str, pa.Array]:
        """One batch on its own (the driver uses `transformer`, which keeps the shape seen)."""
        return _ImageTransform(self, state)(batch)

    def _read(self, batch: Batch) -> tuple[str, list[bytes | None]]:
        """The encoded images; a missing one is a bad row."""
        f = self.model
        name, col = batch.column(f)
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            raise DatasetError(
                f"column '{name}' has type {col.type}; feature '{f.name}' (image) needs encoded image bytes"
            )
        images = col.to_pylist()
        for i, data in enumerate(images):
            if data is None:
                batch.fail(i, name, "missing_value", "image is missing")
        return name, images

    def check(self, batch: Batch) -> None:
        """The column's type and missing images; the images are decoded only in pass 2."""
        self._read(batch)

    def encode(self, batch: Batch, seen: _ImageTransform) -> pa.Array:
        """Decode every image of `batch` and store it in the feature's encoding.

        `seen.shape` is the shape of the first image of the pass; an image of another shape
        is a bad row. `seen.applied` collects the conversions done on the images stored.
        """
        from dataops.imaging.decode import ImageDecodeError, decode_image
        from dataops.imaging.store import encode_pixels

        f = self.model
        name, images = self._read(batch)
        out: list[Any] = []
        for i, data in enumerate(images):
            if data is None:
                out.append(None)
                continue
            applied: set[str] = set()
            try:
                pixels = decode_image(data, f, applied)
            except ImageDecodeError as err:
                batch.fail(i, name, err.reason, err.message)
                out.append(None)
                continue
            shape = list(pixels.shape)
            if seen.shape is None:
                seen.shape = shape
            elif seen.shape != shape:
                batch.fail(
                    i,
                    name,
                    "wrong_shape",
                    f"image is {shape[0]}x{shape[1]}, others are {seen.shape[0]}x{seen.shape[1]}; set `size` to resize",
                )
                out.append(None)
                continue
            seen.applied |= applied
            out.append(encode_pixels(pixels, f))
        if f.dtype == "float32":
            width = int(np.prod(seen.shape)) if seen.shape else 0
            flat = (
                np.stack([x if x is not None else np.zeros(width, np.float32) for x in out])
                if out
                else np.zeros((0, width), np.float32)
            )
            return pa.FixedSizeListArray.from_arrays(
                pa.array(flat.reshape(-1), pa.float32()), width
            )
        return pa.array([x if x is not None else b"" for x in out], pa.binary())


class _ImageTransform(Transform):
    """Keeps the shape of the first image written, which every other image must have, and the
    conversions done on the images written."""

    feature: Image

    def __init__(self, feature: Image, state: State | None) -> None:
        super().__init__(feature, state)
        self.shape: list[int] | None = None
        self.applied: set[str] = set()

    def __call__(self, batch: Batch) -> dict[str, pa.Array]:
        return {self.feature.name: self.feature.encode(batch, self)}

    def infos(self) -> list[FeatureInfo]:
        return self.feature.infos(self.state, self.shape, self.applied)

    @property
    def settled(self) -> bool:
        return self.shape is not None

    def merge(self, other: Transform) -> None:
        if isinstance(other, _ImageTransform):
            if self.shape is None:
                self.shape = other.shape
            self.applied |= other.applied
