"""What the dataset stores of a decoded image: its bytes (PNG, 16-bit PNG written here, or raw
pixels) and the `FeatureInfo` of the image feature."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from dataops.config import ImageFeature
from dataops.metadata import FeatureInfo, ImageDecode


def encode_pixels(pixels: np.ndarray, f: ImageFeature) -> bytes | np.ndarray:
    """What the dataset stores for one image: PNG or raw bytes, or flat float32 values."""
    if f.dtype == "float32":
        return pixels.reshape(-1)
    if f.encoding == "raw":
        return pixels.astype("<u2").tobytes() if f.dtype == "uint16" else pixels.tobytes()
    if f.dtype == "uint16":
        return encode_png16(pixels)
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(
        buf, format="PNG", compress_level=6
    )
    return buf.getvalue()


def encode_png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by channel count) of `(H, W, C)` uint16
    pixels; no filter, zlib level 6: the same pixels give the same bytes."""
    h, w, c = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.zeros((h, 1 + w * c * 2), dtype=np.uint8)
    rows[:, 1:] = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(h, -1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def feature_info(f: ImageFeature, shape: list[int] | None, applied: set[str]) -> FeatureInfo:
    """The `metadata.json` entry of an image feature; `decode` lists the conversions applied
    (absent when every image was stored as read, so such datasets keep their metadata bytes)."""
    shape = list(shape or [*(f.size or [0, 0]), f.channels])
    decode = None
    if applied:
        decode = ImageDecode(
            conversions=sorted(applied),
            background=list(f.background) if "alpha_composited" in applied else None,
        )
    if f.dtype == "float32":
        return FeatureInfo(
            name=f.name, kind="tensor", dtype="float32", shape=shape, encoding="none", decode=decode
        )
    return FeatureInfo(
        name=f.name, kind="image", dtype=f.dtype, shape=shape, encoding=f.encoding, decode=decode
    )
