"""Image features: encoded image bytes decoded, converted, resized, and stored as PNG, raw uint8
pixels or a float32 tensor. Every image of a feature has the same shape.

Images are decoded only when written (pass 2): `check` finds missing ones without decoding.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa

from dataops.config import ImageFeature
from dataops.errors import DatasetError
from dataops.features.base import Batch, Feature, State, Transform
from dataops.metadata import FeatureInfo


class _DecodeError(Exception):
    """An image that cannot be decoded: `reason` counts it, `message` describes it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _decode(data: bytes, f: ImageFeature) -> np.ndarray:
    """Pixels of an encoded image as uint8 [height, width, channels], resized to `f.size`."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            im.load()
            img = im.convert("RGB" if f.channels == 3 else "L")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _DecodeError("unreadable_image", f"cannot decode image: {err}") from None
    if f.size is not None and (img.height, img.width) != tuple(f.size):
        img = img.resize((f.size[1], f.size[0]), PILImage.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).reshape(img.height, img.width, f.channels)


def _png(pixels: np.ndarray, channels: int) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    mode = "RGB" if channels == 3 else "L"
    PILImage.fromarray(pixels.reshape(pixels.shape[:2]) if channels == 1 else pixels, mode).save(
        buf, format="PNG", compress_level=6
    )
    return buf.getvalue()


class Image(Feature[ImageFeature, None]):
    model_type = ImageFeature

    def infos(self, state: State | None, shape: list[int] | None = None) -> list[FeatureInfo]:
        """`shape`: of the images written (default: from `size` and `channels`)."""
        f = self.model
        shape = list(shape or [*(f.size or [0, 0]), f.channels])
        if f.dtype == "float32":
            return [
                FeatureInfo(
                    name=f.name, kind="tensor", dtype="float32", shape=shape, encoding="none"
                )
            ]
        return [
            FeatureInfo(name=f.name, kind="image", dtype="uint8", shape=shape, encoding=f.encoding)
        ]

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
        is a bad row.
        """
        f = self.model
        name, images = self._read(batch)
        out: list[Any] = []
        for i, data in enumerate(images):
            if data is None:
                out.append(None)
                continue
            try:
                pixels = _decode(data, f)
            except _DecodeError as err:
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
            if f.dtype == "float32":
                x = pixels.astype(np.float32)
                out.append((x / np.float32(255) if f.scale else x).reshape(-1))
            elif f.encoding == "raw":
                out.append(pixels.tobytes())
            else:
                out.append(_png(pixels, f.channels))
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
    """Keeps the shape of the first image written, which every other image must have."""

    feature: Image

    def __init__(self, feature: Image, state: State | None) -> None:
        super().__init__(feature, state)
        self.shape: list[int] | None = None

    def __call__(self, batch: Batch) -> dict[str, pa.Array]:
        return {self.feature.name: self.feature.encode(batch, self)}

    def infos(self) -> list[FeatureInfo]:
        return self.feature.infos(self.state, self.shape)
