"""The exact integer formulas of image conversion, written once over an array namespace: NumPy here
(`NP`), TensorFlow in `dataops.imaging.twin` — resize taps and passes, ITU-R 601-2 luma."""

from __future__ import annotations

from typing import Any

import numpy as np

WEIGHT_BITS = 22  # precision of the resize weights
GUARD_BITS = 16  # fraction bits kept between the two resize passes
MAX_RESIZE_SIDE = 1 << 16  # longest source side that is resized
LUMA = (19595, 38470, 7471)  # ITU-R 601-2 in 16-bit fixed point (sums to 65536)


def max_value(bits: int) -> int:
    return (1 << bits) - 1


class NP:
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


def resize_taps(n_in: Any, n_out: Any, xp: Any = NP) -> tuple[Any, Any]:
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
    if xp is NP:
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
