"""Images read exactly: decode, convert and resize with integer arithmetic, and its TensorFlow twin.

`decode_image(data, f)` turns the bytes of one image into the pixels the dataset stores,
`(H, W, C)` in the feature's dtype, or raises `ImageDecodeError(reason, message)` (a bad row).
Every step is exact integer arithmetic, in this order, in the source's own depth (8 or 16 bits):

1. **Decode** with Pillow (JPEG: libjpeg-turbo, ISLOW DCT, fancy upsampling; 16-bit PNG at full
   depth). The size is checked against `max_pixels` before any pixel is decoded. An image of
   several frames (animated GIF, APNG or WebP, multi-page TIFF) is a bad row
   (`multi_frame_image`), never silently its first frame. Palette images
   are expanded to RGB (RGBA when they have transparency); a PNG colour key (tRNS) becomes
   alpha; CMYK is converted as R = floor((255 - C)(255 - K) / 255) (libjpeg's Adobe convention,
   what `tf.io.decode_jpeg` does; no colour management). EXIF orientation is not applied.
2. **Channels.** Gray to RGB only with `convert_gray: true` (replicated), else `wrong_channels`;
   RGB to gray (`channels: 1`) by ITU-R 601-2 luma in Pillow's fixed point:
   L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
3. **Alpha** by the feature's policy: `error` (default) refuses any non-opaque pixel, `drop`,
   `composite` (v = round((v a + bg (M - a)) / M), M = 255 or 65535), `keep` (4th channel).
   Fully opaque alpha is removed under every policy but `keep`.
4. **Resize** (only when `size` differs): separable triangle filter (bilinear, antialiased:
   the support grows with the reduction, as Pillow's BILINEAR and `tf.image.resize(...,
   antialias=True)`), weights quantized to 22 bits with exactly-summing cumulative rounding,
   width first, 16 guard bits between the passes, round half up. All in int64, so any
   implementation of the same formulas gives the same bits.
5. **Depth**: `uint8` stores round(v / 257) of 16-bit sources, `uint16` stores v * 257 of 8-bit
   ones, `float32` divides by 255 (65535 for 16-bit sources) when `scale`.

`tf_decode_image(data, f)` is the same function in TensorFlow ops (`tf.io.decode_png`,
`tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")` and the same integer formulas), and
`serving_fn(meta, name)` wraps it for a dataset: given the raw image bytes at serving time it
returns exactly the pixels the dataset stores (tested bit for bit on PNG and JPEG; other formats
are decoded by Pillow in the pipeline and have no twin). TensorFlow is imported only there.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dataops.config import ImageFeature
from dataops.metadata import DatasetMetadata, FeatureInfo, ImageDecode

WEIGHT_BITS = 22  # precision of the resize weights
GUARD_BITS = 16  # fraction bits kept between the two resize passes
MAX_RESIZE_SIDE = 1 << 16  # longest source side that is resized
LUMA = (19595, 38470, 7471)  # ITU-R 601-2 in 16-bit fixed point (sums to 65536)

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


def _max(bits: int) -> int:
    return (1 << bits) - 1


# --- decoding with Pillow ----------------------------------------------------------------------

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
    return np.where(hit, 0, _max(bits)).astype(dtype)


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


# --- the integer pipeline (numpy here, TensorFlow in the twin) ---------------------------------


class _NP:
    """The array operations the shared integer formulas need, for NumPy."""

    @staticmethod
    def arange(n: Any) -> Any:
        return np.arange(n, dtype=np.int64)

    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    abs = staticmethod(np.abs)

    @staticmethod
    def cumsum(x: Any) -> Any:
        return np.cumsum(x, axis=1)

    @staticmethod
    def last(x: Any) -> Any:
        return x[:, -1:]

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return np.where(c, a, b)

    @staticmethod
    def to_int(x: Any) -> Any:
        return np.asarray(x, dtype=np.int64)


def resize_taps(n_in: Any, n_out: Any, xp: Any = _NP) -> tuple[Any, Any]:
    """Input indexes and integer weights `(idx, q)`, both `[n_out, K]`, of the triangle filter.

    Output pixel j and input pixel i have centres (2j+1)/(2 n_out) and (2i+1)/(2 n_in) of the
    image; with D = max(n_in, n_out) the unnormalized weight is
    u = max(0, 2D - |(2i+1) n_out - (2j+1) n_in|), an integer (the triangle of half-width
    max(1, n_in / n_out) input pixels). Each row's weights are quantized to sum exactly to
    2**WEIGHT_BITS by cumulative rounding: Q_k = round(2**WEIGHT_BITS * C_k / U), C the running
    sum of u, U the row total; q_k = Q_k - Q_(k-1). All integer, computed by long division so
    nothing overflows int64 for sides up to 2**27 (`decode_image` resizes sides up to 2**16).
    """
    n_in, n_out = xp.to_int(n_in), xp.to_int(n_out)
    d = xp.maximum(n_in, n_out)
    k = (2 * d) // n_out + 3
    j = xp.arange(n_out)[:, None]
    first = xp.maximum(((2 * j + 1) * n_in - 2 * d) // n_out // 2, 0)
    i = first + xp.arange(k)[None, :]
    u = xp.maximum(2 * d - xp.abs((2 * i + 1) * n_out - (2 * j + 1) * n_in), 0)
    u = xp.where(i < n_in, u, 0)
    c = xp.cumsum(u)
    total = xp.last(c)
    q, r = c * 0, c
    for step in (6, 6, 6, 4):  # long division: floor(c * 2**22 / total), r < total < 2**57
        r = r * (1 << step)
        q = q * (1 << step) + r // total
        r = r % total
    big_q = q + xp.where(r + total // 2 >= total, 1, 0)
    return xp.minimum(i, n_in - 1), _diff(big_q, xp)


def _diff(x: Any, xp: Any) -> Any:
    if xp is _NP:
        return np.diff(x, axis=1, prepend=0)
    import tensorflow as tf

    return x - tf.pad(x[:, :-1], [[0, 0], [1, 0]])


def _resample_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Weighted sums along `axis` (int64 in, int64 out), tap by tap to bound memory."""
    idx, q = resize_taps(x.shape[axis], n_out)
    shape = [1] * x.ndim
    shape[axis] = n_out
    acc = np.zeros(x.shape[:axis] + (n_out,) + x.shape[axis + 1 :], dtype=np.int64)
    for t in range(idx.shape[1]):
        w = q[:, t]
        if not w.any():
            continue
        acc += w.reshape(shape) * np.take(x, idx[:, t], axis=axis)
    return acc


def resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize `(H, W, C)` integer pixels to `(height, width, C)`, same dtype (see the module doc)."""
    h, w = x.shape[:2]
    if (h, w) == (height, width):
        return x
    v = x.astype(np.int64)
    shift1 = WEIGHT_BITS - GUARD_BITS
    if w != width:
        v = (_resample_axis(v, width, 1) + (1 << (shift1 - 1))) >> shift1
    else:
        v = v << GUARD_BITS
    if h != height:
        v = (_resample_axis(v, height, 0) + (1 << (WEIGHT_BITS + GUARD_BITS - 1))) >> (
            WEIGHT_BITS + GUARD_BITS
        )
    else:
        v = (v + (1 << (GUARD_BITS - 1))) >> GUARD_BITS
    return v.astype(x.dtype)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in Pillow's fixed point, for 8- or 16-bit `(..., 3)` pixels."""
    v = rgb.astype(np.int64)
    out = (v[..., 0] * LUMA[0] + v[..., 1] * LUMA[1] + v[..., 2] * LUMA[2] + 32768) >> 16
    return out.astype(rgb.dtype)[..., None]


def _fail_alpha(alpha: np.ndarray, bits: int) -> ImageDecodeError:
    n = int(np.count_nonzero(alpha != _max(bits)))
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
    top = _max(bits)
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
            return x / np.float32(_max(bits))
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


# --- storing ------------------------------------------------------------------------------------


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


# --- the TensorFlow twin ------------------------------------------------------------------------


class _TF:
    """The array operations of the shared integer formulas, for TensorFlow (int64)."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf

    def arange(self, n: Any) -> Any:
        return self.tf.range(self.tf.cast(n, self.tf.int64), dtype=self.tf.int64)

    def maximum(self, a: Any, b: Any) -> Any:
        return self.tf.maximum(a, self.tf.cast(b, self.tf.int64))

    def minimum(self, a: Any, b: Any) -> Any:
        return self.tf.minimum(a, self.tf.cast(b, self.tf.int64))

    def abs(self, x: Any) -> Any:
        return self.tf.abs(x)

    def cumsum(self, x: Any) -> Any:
        return self.tf.math.cumsum(x, axis=1)

    def last(self, x: Any) -> Any:
        return x[:, -1:]

    def where(self, c: Any, a: Any, b: Any) -> Any:
        tf = self.tf
        a = tf.cast(a, tf.int64)
        b = tf.cast(b, tf.int64)
        return tf.where(c, a + b * 0, b + a * 0)

    def to_int(self, x: Any) -> Any:
        return self.tf.cast(x, self.tf.int64)


def _tf_resize(x: Any, height: int, width: int) -> Any:
    """`resize` in TensorFlow int64 ops: the same taps, the same shifts."""
    import tensorflow as tf

    xp = _TF()
    shift1 = WEIGHT_BITS - GUARD_BITS

    def axis_pass(v: Any, n_out: int, axis: int) -> Any:
        n_in = tf.shape(v, out_type=tf.int64)[axis]
        idx, q = resize_taps(n_in, n_out, xp)  # [n_out, K]
        g = tf.gather(v, idx, axis=axis)  # axis -> (n_out, K)
        if axis == 1:
            return tf.reduce_sum(g * q[None, :, :, None], axis=2)
        return tf.reduce_sum(g * q[:, :, None, None], axis=1)

    shape = tf.shape(x)
    same_w = tf.equal(shape[1], width)
    same_h = tf.equal(shape[0], height)
    v = tf.cond(
        same_w,
        lambda: x * (1 << GUARD_BITS),
        lambda: (axis_pass(x, width, 1) + (1 << (shift1 - 1))) // (1 << shift1),
    )
    total = WEIGHT_BITS + GUARD_BITS
    return tf.cond(
        same_h,
        lambda: (v + (1 << (GUARD_BITS - 1))) // (1 << GUARD_BITS),
        lambda: (axis_pass(v, height, 0) + (1 << (total - 1))) // (1 << total),
    )


def _tf_png_frames(data: Any) -> Any:
    """The frames of a PNG as Pillow counts them: 1, or for an APNG the `acTL` chunk's count,
    plus the default image when no `fcTL` precedes the first `IDAT` (it is then not one of
    them). Walks the chunks before the first `IDAT`."""
    import tensorflow as tf

    size = tf.cast(tf.strings.length(data), tf.int64)

    def u32(pos: Any) -> Any:
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, 4), tf.uint8), tf.int64)
        return ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]

    def kind(pos: Any) -> Any:
        return tf.strings.substr(data, tf.minimum(pos + 4, size), 4)

    def more(pos: Any, actl: Any, fctl: Any) -> Any:
        return (pos + 12 <= size) & tf.not_equal(kind(pos), b"IDAT")

    def step(pos: Any, actl: Any, fctl: Any) -> tuple[Any, Any, Any]:
        t = kind(pos)
        has_count = tf.equal(t, b"acTL") & (pos + 12 <= size)
        actl = tf.where(has_count, u32(tf.minimum(pos + 8, size - 4)), actl)
        fctl = fctl | tf.equal(t, b"fcTL")
        return pos + 12 + u32(pos), actl, fctl

    zero = tf.constant(0, tf.int64)
    _, actl, fctl = tf.while_loop(more, step, (tf.constant(8, tf.int64), zero, tf.constant(False)))
    extra = tf.where(fctl, zero, tf.constant(1, tf.int64))
    return tf.where(actl > 0, actl + extra, tf.constant(1, tf.int64))


def tf_decode_image(data: Any, f: ImageFeature) -> Any:
    """`decode_image` in TensorFlow ops: a scalar string tensor of PNG or JPEG bytes to
    `(H, W, C)` pixels in `f.dtype`. Rows `decode_image` refuses raise InvalidArgumentError
    naming the same reason."""
    import tensorflow as tf

    png_magic = b"\x89PNG\r\n\x1a\n"
    is_png = tf.equal(tf.strings.substr(data, 0, 8), png_magic)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")
    known = tf.debugging.Assert(
        is_png | is_jpeg, ["unreadable_image: the serving twin decodes PNG and JPEG only"]
    )
    with tf.control_dependencies([known]):
        data = tf.identity(data)

    def header_byte(pos: int) -> Any:
        return tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, 1), tf.uint8)[0], tf.int64)

    def png() -> tuple[Any, ...]:
        wh = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.int32, little_endian=False)
        wh = tf.cast(wh, tf.int64)
        pixels = wh[0] * wh[1]
        deep = tf.equal(header_byte(24), 16)
        ctype = header_byte(25)
        gray = tf.equal(ctype, 0) | tf.equal(ctype, 4)
        return pixels, deep, gray, _tf_png_frames(data)

    def jpeg() -> tuple[Any, ...]:
        s = tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)
        return s[0] * s[1], tf.constant(False), tf.equal(s[2], 1), tf.constant(1, tf.int64)

    pixels, deep, gray, frames = tf.cond(is_png, png, jpeg)
    small = tf.debugging.Assert(
        pixels <= f.max_pixels,
        ["image_too_large: image has", pixels, "pixels, more than max_pixels", f.max_pixels],
    )
    with tf.control_dependencies([small]):  # checked in the order `decode_image` checks them
        single = tf.debugging.Assert(
            frames <= 1, ["multi_frame_image: an animated PNG of", frames, "frames"]
        )
    with tf.control_dependencies([single]):  # no pixel is decoded before the checks
        data = tf.identity(data)
    top = tf.where(deep, tf.constant(65535, tf.int64), tf.constant(255, tf.int64))

    def dec_png() -> Any:
        v = tf.cast(tf.io.decode_png(data, channels=4, dtype=tf.uint16), tf.int64)
        # decode_png fills the alpha of 1/2/4-bit gray PNGs without tRNS with 2**depth - 1
        # (scaled to 16 bits) instead of opaque; no real alpha takes that value there.
        depth = header_byte(24)
        filler = (tf.bitwise.left_shift(tf.constant(1, tf.int64), depth) - 1) * 257
        low_gray = (depth < 8) & tf.equal(header_byte(25), 0)
        a = v[..., 3:]
        a = tf.where(low_gray & tf.equal(a, filler), tf.constant(65535, tf.int64), a)
        v = tf.concat([v[..., :3], a], 2)
        return tf.where(deep, v, v // 257)

    def dec_jpeg() -> Any:
        v = tf.cast(tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"), tf.int64)
        return tf.concat(
            [v, tf.fill(tf.concat([tf.shape(v)[:2], [1]], 0), tf.constant(255, tf.int64))], 2
        )

    v = tf.cond(is_png, dec_png, dec_jpeg)
    color, alpha = v[..., :3], v[..., 3:]
    if f.channels == 1:
        w = tf.constant(LUMA, tf.int64)
        color = (tf.reduce_sum(color * w, axis=2, keepdims=True) + 32768) // 65536
    elif not f.convert_gray:
        tf.debugging.Assert(
            tf.logical_not(gray),
            [
                f"wrong_channels: image is grayscale, the feature has channels: {f.channels}; "
                "set `convert_gray: true`"
            ],
        )
    if f.alpha == "keep":
        color = tf.concat([color, alpha], 2)
    else:
        opaque = tf.reduce_all(tf.equal(alpha, top))
        if f.alpha == "error":
            tf.debugging.Assert(
                opaque, ["transparent_image: image has transparent or translucent pixels"]
            )
        elif f.alpha == "composite":
            bg = tf.constant(f.background, tf.int64)
            if f.channels == 1:
                bg = (
                    tf.reduce_sum(bg * tf.constant(LUMA, tf.int64), keepdims=True) + 32768
                ) // 65536
            bg = tf.where(deep, bg * 257, bg)
            color = (color * alpha + bg * (top - alpha) + top // 2) // top
    if f.size is not None:
        hw = tf.shape(color, out_type=tf.int64)[:2]
        fits = tf.reduce_all(tf.equal(hw, f.size)) | (tf.reduce_max(hw) <= MAX_RESIZE_SIDE)
        with tf.control_dependencies(
            [tf.debugging.Assert(fits, ["image_too_large: a side is too long to resize", hw])]
        ):
            color = _tf_resize(tf.identity(color), f.size[0], f.size[1])
    if f.dtype == "float32":
        x = tf.cast(color, tf.float32)
        if f.scale:
            return x / tf.cast(top, tf.float32)
        return tf.where(deep, x / 257.0, x)
    if f.dtype == "uint8":
        return tf.cast(tf.where(deep, (color + 128) // 257, color), tf.uint8)
    return tf.cast(tf.where(deep, color, color * 257), tf.uint16)


def image_feature(meta: Any, name: str) -> ImageFeature:
    """The `ImageFeature` params a dataset's image feature `name` was made with (from
    `metadata.json`'s `preprocessing.params`)."""
    from dataops.errors import DatasetError

    features = meta.preprocessing.get("params", {}).get("preprocess", {}).get("features", [])
    for entry in features:
        if entry.get("name") == name and entry.get("kind") == "image":
            return ImageFeature.model_validate(entry)
    raise DatasetError(f"dataset {meta.name!r} has no image feature {name!r} in its params")


def serving_fn(source: Any, name: str | None = None) -> Callable[[Any], Any]:
    """A `tf.function` from the raw bytes of one image (scalar tf.string) to the pixels the
    dataset stores, bit for bit (see the module doc). `source`: the dataset's metadata
    (`DatasetMetadata`) with the image feature's `name`, or an `ImageFeature`."""
    import tensorflow as tf

    # Dispatch on the argument's type (a dataset or its params), not on a feature kind.
    f = image_feature(source, str(name)) if isinstance(source, DatasetMetadata) else source

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def serve(data: Any) -> Any:
        return tf_decode_image(data, f)

    return serve
