"""The TensorFlow twin of `decode_image`: `tf_decode_image` gives the same pixels bit for bit with
TensorFlow ops, and `serving_fn` wraps it for a dataset's image feature. TensorFlow is imported
inside the functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataops.config import ImageFeature
from dataops.errors import DatasetError
from dataops.imaging.arith import GUARD_BITS, LUMA, MAX_RESIZE_SIDE, WEIGHT_BITS, resize_taps
from dataops.metadata import DatasetMetadata


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
