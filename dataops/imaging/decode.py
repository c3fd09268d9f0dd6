"""Decoding one image exactly: Pillow reads the bytes, then channels, alpha, resize and depth in
integer arithmetic (`decode_image`; the steps are in `dataops.imaging`'s docstring)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from dataops.config import ImageFeature
from dataops.imaging.arith import MAX_RESIZE_SIDE, luma, max_value, resize

CONVERSIONS = {
    "palette_to_rgb": "palette expanded to RGB (RGBA with transparency)",
    "transparency_key_to_alpha": "PNG colour key (tRNS) turned into alpha",
    "cmyk_to_rgb": "CMYK: R = floor((255 - C)(255 - K) / 255), likewise G, B",
    "gray_to_rgb": "gray replicated into R, G, B (`convert_gray: true`)",
    "rgb_to_gray": "ITU-R 601-2 luma: L = (19595 R + 38470 G + 7471 B + 32768) >> 16",
    "opaque_alpha_removed": "a fully opaque alpha channel removed",
    "alpha_dropped": "alpha ignored (`alpha: drop`): hidden colours of transparent pixels stored",
    "alpha_composited": "blended onto `background`: round((v a + bg (M - a)) / M)",
    "alpha_added": "opaque alpha added to an image without one (`alpha: keep`)",
    "resized": "triangle filter, exact integer weights (dataops.imaging)",
    "16bit_to_8bit": "16-bit source stored as uint8: round(v / 257)",
    "8bit_to_16bit": "8-bit source stored as uint16: v * 257",
}


class ImageDecodeError(Exception):
    """An image that cannot be stored as declared: a bad row, counted under `reason`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _Source:
    color: np.ndarray  # (H, W, 1 or 3), uint8 or uint16
    alpha: np.ndarray | None  # (H, W), same dtype, or None
    bits: int  # 8 or 16


_PIL_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
)


def _open(data: bytes) -> Any:
    from PIL import Image

    with warnings.catch_warnings():
        # The size is checked against `max_pixels` right after; Pillow's own warning is noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def _load_rawmode(data: bytes, rawmode: str) -> np.ndarray:
    """Decode a PNG again with another unpacker for its (already unfiltered) sample bytes.

    Pillow has no 16-bit colour modes: it keeps the high byte of each 16-bit sample. Its
    `RGB;16L`/`RGBA;16L` unpackers keep the second byte instead, which for PNG's big-endian
    samples is the low byte; and a 16-bit gray+alpha row has the layout of an 8-bit RGBA row.
    """
    im = _open(data)
    im.tile = [im.tile[0]._replace(args=rawmode)]
    im.load()
    return np.asarray(im)


def _read(data: bytes, f: ImageFeature, applied: set[str]) -> _Source:
    from PIL import Image

    try:
        im = _open(data)
    except Image.DecompressionBombError:
        raise ImageDecodeError(
            "image_too_large",
            f"image is larger than Pillow decodes at all ({2 * (Image.MAX_IMAGE_PIXELS or 0)} "
            f"pixels), far more than max_pixels {f.max_pixels}",
        ) from None
    except Image.UnidentifiedImageError:
        # Pillow's message names an in-memory object address: say what is known instead
        what = "an empty file" if not data else f"{len(data)} bytes starting {data[:8]!r}"
        raise ImageDecodeError(
            "unreadable_image", f"cannot decode image: not a known image format ({what})"
        ) from None
    except _PIL_ERRORS as err:
        raise ImageDecodeError("unreadable_image", f"cannot decode image: {err}") from None
    w, h = im.size
    if w * h > f.max_pixels:
        raise ImageDecodeError(
            "image_too_large",
            f"image is {w}x{h} = {w * h} pixels, more than max_pixels {f.max_pixels}; "
            f"raise the feature's `max_pixels` (at most {1 << 27}) or shrink the image",
        )
    try:
        with im:
            frames = _frames(im)
            if frames > 1:
                raise ImageDecodeError(
                    "multi_frame_image",
                    f"image is an animated or multi-page {im.format} of {frames} frames; the "
                    "feature stores one image per row: extract the frame you want (or store "
                    "each frame as its own image)",
                )
            rawmode = _rawmode(im)
            png16 = im.format == "PNG" and rawmode in _PNG16
            if not png16 and im.mode in ("RGB", "RGBA", "LA") and "16" in rawmode:
                # Pillow has no 16-bit colour modes and would keep only the high bytes
                raise ImageDecodeError(
                    "unreadable_image",
                    f"cannot decode image: 16-bit colour {im.format} ({rawmode}) is read at full "
                    "depth only from PNG; convert the image to 16-bit PNG",
                )
            im.load()
            return _to_source(im, data, rawmode, png16, applied)
    except Image.DecompressionBombError:
        raise ImageDecodeError(
            "image_too_large", f"image is {w}x{h}, too large for Pillow"
        ) from None
    except _PIL_ERRORS as err:
        raise ImageDecodeError("unreadable_image", f"cannot decode image: {err}") from None


_PNG16 = ("RGB;16B", "RGBA;16B", "LA;16B")


SINGLE_VIEW_FORMATS = ("MPO", "PSD")
"""Formats whose extra "frames" are not images of their own: an MPO is a JPEG with preview or
depth images appended (as cameras write; every JPEG decoder shows the first), a PSD's frames are
its layers (the composite is read). Their first image is what the file shows."""


def _frames(im: Any) -> int:
    """The frames of an animated or multi-page image (GIF, APNG, TIFF, WebP, ...); 1 otherwise."""
    if im.format in SINGLE_VIEW_FORMATS:
        return 1
    return int(getattr(im, "n_frames", 1))


def _rawmode(im: Any) -> str:
    """How the decoder unpacks the file's samples (e.g. `RGB;16B`), or "" if unknown."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def _key_alpha(color: np.ndarray, key: Any, bits: int) -> np.ndarray | None:
    """Alpha from a PNG colour key: 0 where the pixel equals the key, opaque elsewhere."""
    k = np.asarray(key if isinstance(key, tuple) else (key,), dtype=np.int64)
    if k.size != color.shape[2]:
        return None
    hit = (color.astype(np.int64) == k).all(axis=2)
    dtype = np.uint16 if bits == 16 else np.uint8
    return np.where(hit, 0, max_value(bits)).astype(dtype)


def _to_source(im: Any, data: bytes, rawmode: str, png16: bool, applied: set[str]) -> _Source:
    """The loaded image `im` as 8- or 16-bit gray/RGB samples plus alpha; `rawmode` is the
    unpacker its decoder used, `png16` whether it is a 16-bit PNG."""
    mode = im.mode
    if png16 and rawmode in ("RGB;16B", "RGBA;16B"):  # 16-bit colour PNG: high and low bytes
        hi = np.asarray(im).astype(np.uint16)
        lo = _load_rawmode(data, rawmode.replace("16B", "16L")).astype(np.uint16)
        v = (hi << 8) | lo
        alpha = v[..., 3] if v.shape[2] == 4 else None
        return _with_key(v[..., :3], alpha, 16, im.info.get("transparency"), applied)
    if png16 and rawmode == "LA;16B":  # 16-bit gray + alpha PNG
        b = _load_rawmode(data, "RGBA").astype(np.uint16)
        return _Source(((b[..., 0] << 8) | b[..., 1])[..., None], (b[..., 2] << 8) | b[..., 3], 16)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray16 = np.asarray(im).astype(np.uint16)[..., None]
        return _with_key(gray16, None, 16, im.info.get("transparency"), applied)
    if mode in ("P", "PA"):
        applied.add("palette_to_rgb")
        if mode == "PA" or "transparency" in im.info:
            v = np.asarray(im.convert("RGBA"))
            return _Source(v[..., :3], v[..., 3], 8)
        return _Source(np.asarray(im.convert("RGB")), None, 8)
    if mode == "CMYK":
        applied.add("cmyk_to_rgb")
        v = np.asarray(im).astype(np.int32)
        nk = 255 - v[..., 3:4]
        return _Source((((255 - v[..., :3]) * nk) // 255).astype(np.uint8), None, 8)
    if mode in ("1", "L"):
        gray = np.asarray(im.convert("L"))[..., None]
        key = im.info.get("transparency")
        low = {"L;2": 85, "L;4": 17}.get(rawmode, 1) if im.format == "PNG" else 1
        if isinstance(key, int):  # Pillow gives a 2/4-bit PNG key unscaled (1-bit: scaled)
            key *= low
        return _with_key(gray, None, 8, key, applied)
    if mode in ("LA", "La"):
        v = np.asarray(im.convert("LA"))
        return _Source(v[..., :1], v[..., 1], 8)
    if mode in ("RGB", "RGBX", "YCbCr"):
        return _with_key(
            np.asarray(im.convert("RGB")), None, 8, im.info.get("transparency"), applied
        )
    if mode in ("RGBA", "RGBa"):
        v = np.asarray(im.convert("RGBA"))
        return _Source(v[..., :3], v[..., 3], 8)
    raise ImageDecodeError(
        "unreadable_image",
        f"cannot decode image: pixel format {mode!r} is not supported (use 8- or 16-bit gray, RGB, RGBA, palette or CMYK)",
    )


def _with_key(
    color: np.ndarray, alpha: np.ndarray | None, bits: int, key: Any, applied: set[str]
) -> _Source:
    """The source, with a PNG colour key (an int or a tuple) turned into alpha."""
    if alpha is None and key is not None and not isinstance(key, bytes):
        alpha = _key_alpha(color, key, bits)
        if alpha is not None:
            applied.add("transparency_key_to_alpha")
    return _Source(np.ascontiguousarray(color), alpha, bits)


def _fail_alpha(alpha: np.ndarray, bits: int) -> ImageDecodeError:
    n = int(np.count_nonzero(alpha != max_value(bits)))
    return ImageDecodeError(
        "transparent_image",
        f"image has {n} transparent or translucent pixels of {alpha.size}; set the feature's "
        "`alpha: composite` (onto `background: [r, g, b]`), `alpha: drop` (store the hidden "
        "colours) or `alpha: keep` with `channels: 4`",
    )


def decode_image(data: bytes, f: ImageFeature, applied: set[str] | None = None) -> np.ndarray:
    """The pixels stored for one image: `(H, W, C)` in `f.dtype`; raises ImageDecodeError.

    `applied` (if given) receives the names of the conversions done (keys of CONVERSIONS).
    """
    done: set[str] = set()
    src = _read(data, f, done)
    color, alpha, bits = src.color, src.alpha, src.bits
    top = max_value(bits)
    # 2. channels
    if f.channels == 1 and color.shape[2] == 3:
        color = luma(color)
        done.add("rgb_to_gray")
    elif f.channels >= 3 and color.shape[2] == 1:
        if not f.convert_gray:
            raise ImageDecodeError(
                "wrong_channels",
                f"image is grayscale, the feature has channels: {f.channels}; set the feature's "
                "`convert_gray: true` to replicate the gray channel (or `channels: 1`)",
            )
        color = np.repeat(color, 3, axis=2)
        done.add("gray_to_rgb")
    # 3. alpha
    if alpha is not None and f.alpha != "keep":
        if bool((alpha == top).all()):
            done.add("opaque_alpha_removed")
        elif f.alpha == "error":
            raise _fail_alpha(alpha, bits)
        elif f.alpha == "drop":
            done.add("alpha_dropped")
        else:
            bg = np.asarray(f.background, dtype=np.int64)
            if f.channels == 1:
                bg = luma(bg.reshape(1, 3))[0]
            bg = bg * (257 if bits == 16 else 1)
            a = alpha.astype(np.int64)[..., None]
            v = color.astype(np.int64) * a + bg * (top - a)
            color = ((v + top // 2) // top).astype(color.dtype)
            done.add("alpha_composited")
        alpha = None
    if f.alpha == "keep":
        if alpha is None:
            alpha = np.full(color.shape[:2], top, dtype=color.dtype)
            done.add("alpha_added")
        color = np.concatenate([color, alpha[..., None]], axis=2)
    # 4. size
    if f.size is not None and tuple(color.shape[:2]) != tuple(f.size):
        if max(color.shape[:2]) > MAX_RESIZE_SIDE:  # the resize weights grow with the side
            h, w = color.shape[:2]
            raise ImageDecodeError(
                "image_too_large",
                f"image is {w}x{h}; a side over {MAX_RESIZE_SIDE} pixels cannot be resized "
                "(set `size: null` to keep the size, or crop the image)",
            )
        color = resize(color, f.size[0], f.size[1])
        done.add("resized")
    # 5. depth
    out = _depth(color, bits, f, done)
    if applied is not None:
        applied |= done
    return out


def _depth(v: np.ndarray, bits: int, f: ImageFeature, done: set[str]) -> np.ndarray:
    if f.dtype == "float32":
        x = v.astype(np.float32)
        if f.scale:
            return x / np.float32(max_value(bits))
        return x / np.float32(257) if bits == 16 else x
    if f.dtype == "uint8":
        if bits == 16:
            done.add("16bit_to_8bit")
            return ((v.astype(np.int64) + 128) // 257).astype(np.uint8)
        return v.astype(np.uint8)
    if bits == 8:
        done.add("8bit_to_16bit")
        return v.astype(np.uint16) * np.uint16(257)
    return v.astype(np.uint16)
