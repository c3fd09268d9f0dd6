"""The `tf.train.Example` wire format and TFRecord framing, encoded a batch at a time with NumPy.

The per-example habit — build an `Example` proto from Python values, `SerializeToString()`,
`TFRecordWriter.write()` — spends nearly all of its time in protobuf object construction.
Here a whole batch is encoded column by column into one byte buffer: a feature's map-entry
header depends only on its payload length, so headers (and the frame headers) are built once
per distinct length in a small table that rows point into; the payloads stay in the column
buffers they came in (int64 values become one varint stream); one byte gather, or one memcpy
per segment when segments are long, assembles the framed records. The bytes equal
`example.SerializeToString(deterministic=True)` with map keys sorted by their bytes (C++
protobuf's order; Python's upb backend differs only when a key is a prefix of another, putting
"caption_ids" before "caption") inside the standard TFRecord framing; `tests/tfrecord/test_codec.py`
checks this against protobuf's serializer, entry by entry, and TensorFlow's parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import crc32c as _crc32c
import numpy as np

WireKind = Literal["bytes", "float", "int64"]

# Field tags of tensorflow/core/example/feature.proto (field number << 3 | wire type 2).
_TAG_BYTES_LIST, _TAG_FLOAT_LIST, _TAG_INT64_LIST = 0x0A, 0x12, 0x1A
_LEN_FIELD_1, _LEN_FIELD_2 = 0x0A, 0x12
_MASK_DELTA = 0xA282EAD8
_FRAME_HEADER = 12  # uint64 length + uint32 masked crc of the length
_FRAME_FOOTER = 4  # uint32 masked crc of the data


@dataclass(frozen=True)
class Column:
    """One feature of a batch of `n` rows: row i holds `values[offsets[i]:offsets[i + 1]]`.

    For `bytes`, `values` is the uint8 data buffer and each row holds exactly one value.
    """

    name: str
    kind: WireKind
    values: np.ndarray
    offsets: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1


@dataclass(frozen=True)
class EncodedBatch:
    """TFRecord-framed examples in one buffer; record i is `data[starts[i]:starts[i + 1]]`."""

    data: np.ndarray
    starts: np.ndarray

    @property
    def num_records(self) -> int:
        return len(self.starts) - 1

    def examples(self) -> list[bytes]:
        """The serialized `Example` protos, without framing (for tests and small uses)."""
        raw = self.data.tobytes()
        return [
            raw[a + _FRAME_HEADER : b - _FRAME_FOOTER]
            for a, b in zip(self.starts[:-1].tolist(), self.starts[1:].tolist(), strict=True)
        ]


# --- varints -------------------------------------------------------------------------------

_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def varint_len(v: np.ndarray) -> np.ndarray:
    """Bytes needed by each value as a protobuf varint (int64 values as their uint64 bits)."""
    u = v.astype(np.int64, copy=False).view(np.uint64) if v.dtype != np.uint64 else v
    n = np.ones(u.shape, dtype=np.int64)
    for limit in _VARINT_LIMITS:
        ge = u >= limit
        if not ge.any():
            break
        n += ge
    return n


def _put_varints(mat: np.ndarray, col: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Write varint(v[i]) into row i of `mat` at column col[i]; return the next columns."""
    u = v.astype(np.int64, copy=False).view(np.uint64)
    lens = varint_len(u)
    rows = np.arange(len(u))
    for b in range(int(lens.max()) if len(u) else 0):
        m = lens > b
        byte = ((u[m] >> np.uint64(7 * b)) & np.uint64(0x7F)).astype(np.uint8)
        byte |= np.where(lens[m] > b + 1, np.uint8(0x80), np.uint8(0))
        mat[rows[m], col[m] + b] = byte
    return col + lens


def _varint_stream(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode a flat int64 array as concatenated varints; return (bytes, per-value lengths)."""
    u = v.astype(np.int64, copy=False).view(np.uint64)
    lens = varint_len(u)
    if len(u) and int(lens.max()) == 1:
        return u.astype(np.uint8), lens
    ends = np.cumsum(lens)
    out = np.empty(int(ends[-1]) if len(u) else 0, dtype=np.uint8)
    starts = ends - lens
    for b in range(int(lens.max()) if len(u) else 0):
        m = lens > b
        byte = ((u[m] >> np.uint64(7 * b)) & np.uint64(0x7F)).astype(np.uint8)
        byte |= np.where(lens[m] > b + 1, np.uint8(0x80), np.uint8(0))
        out[starts[m] + b] = byte
    return out, lens


# --- crc32c --------------------------------------------------------------------------------


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_CRC_TABLE = _crc_table()


def _mask(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint64)
    return ((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF).astype("<u4")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked crc32c of one buffer."""
    return int(_mask(np.array([_crc32c.crc32c(data)], dtype=np.uint32))[0])


def _crc_of_rows(rows: np.ndarray) -> np.ndarray:
    """crc32c of each row of a small uint8 matrix, vectorized over rows (table-driven)."""
    crc = np.full(len(rows), 0xFFFFFFFF, dtype=np.uint32)
    for k in range(rows.shape[1]):
        crc = _CRC_TABLE[(crc ^ rows[:, k]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


# --- encoding ------------------------------------------------------------------------------


def _payload(col: Column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(buffer, per-row start in buffer, per-row byte length) of a column's payload."""
    off = col.offsets.astype(np.int64, copy=False)
    if col.kind == "float":
        buf = np.ascontiguousarray(col.values, dtype="<f4").view(np.uint8).reshape(-1)
        return buf, off[:-1] * 4, np.diff(off) * 4
    if col.kind == "int64":
        buf, lens = _varint_stream(col.values)
        cl = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=cl[1:])
        return buf, cl[off[:-1]], cl[off[1:]] - cl[off[:-1]]
    buf = np.asarray(col.values, dtype=np.uint8).reshape(-1)
    return buf, off[:-1], np.diff(off)


def _put_varints_rows(
    mat: np.ndarray, rows: np.ndarray, col: np.ndarray, v: np.ndarray
) -> np.ndarray:
    sub = mat[rows]
    out = _put_varints(sub, col, v)
    mat[rows] = sub
    return out


def _varint_bytes(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_batch(columns: list[Column]) -> EncodedBatch:
    """Encode `n` rows given column by column as TFRecord-framed `tf.train.Example` records."""
    if not columns:
        raise ValueError("an Example needs at least one feature")
    n = columns[0].num_rows
    cols = sorted(columns, key=lambda c: c.name.encode())
    # Every per-row header depends only on a length, so it is built once per distinct length
    # (a handful per batch) and rows point into that small table.
    buffers: list[np.ndarray] = []
    seg_src: list[np.ndarray] = []
    seg_len: list[np.ndarray] = []
    features_len = np.zeros(n, dtype=np.int64)
    payloads = []
    for col in cols:
        if col.num_rows != n:
            raise ValueError(f"feature {col.name!r} has {col.num_rows} rows, expected {n}")
        buf, pstart, plen = _payload(col)
        lens, inv = _distinct(plen)
        hdr, hlen, entry = _entry_headers(col, lens)
        payloads.append((buf, pstart, plen, hdr, hlen[inv], inv))
        features_len += entry[inv]
    # Frame header + Example tag + varint(len(Features)), one row per distinct length.
    flens, finv = _distinct(features_len)
    m = len(flens)
    ex_len_u = 1 + varint_len(flens) + flens
    head = np.zeros((m, _FRAME_HEADER + 1 + 10), dtype=np.uint8)
    head[:, :8] = ex_len_u.astype("<u8").view(np.uint8).reshape(m, 8)
    head[:, 8:12] = _mask(_crc_of_rows(head[:, :8])).view(np.uint8).reshape(m, 4)
    head[:, 12] = _LEN_FIELD_1
    head_len = _put_varints(head, np.full(m, 13, dtype=np.int64), flens)
    base = 0
    buffers.append(head.reshape(-1))
    seg_src.append(finv * head.shape[1])
    seg_len.append(head_len[finv])
    base += head.size
    for buf, pstart, plen, hdr, hlen, inv in payloads:
        buffers.append(hdr.reshape(-1))
        seg_src.append(inv * hdr.shape[1] + base)
        seg_len.append(hlen)
        base += hdr.size
        buffers.append(buf)
        seg_src.append(pstart + base)
        seg_len.append(plen)
        base += buf.size
    # Footer placeholder (filled with the data crc below).
    buffers.append(np.zeros(_FRAME_FOOTER, dtype=np.uint8))
    seg_src.append(np.full(n, base, dtype=np.int64))
    seg_len.append(np.full(n, _FRAME_FOOTER, dtype=np.int64))
    src = np.concatenate(buffers)
    s = np.stack(seg_src, axis=1).reshape(-1)
    ln = np.stack(seg_len, axis=1).reshape(-1)
    out_start = np.zeros(len(ln) + 1, dtype=np.int64)
    np.cumsum(ln, out=out_start[1:])
    total = int(out_start[-1])
    if total >= _GATHER_MIN_SEGMENT * len(ln):
        data = _copy_segments(src, s, out_start, ln, total)
    else:
        data = _gather_segments(src, s, out_start, ln, total)
    rec_len = _FRAME_HEADER + ex_len_u[finv] + _FRAME_FOOTER
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(rec_len, out=starts[1:])
    view = data.data  # a memoryview of the buffer
    ex_ends = starts[1:] - _FRAME_FOOTER
    slices = map(slice, (starts[:-1] + _FRAME_HEADER).tolist(), ex_ends.tolist())
    crcs = np.fromiter(map(_crc32c.crc32c, map(view.__getitem__, slices)), dtype=np.uint32, count=n)
    foot = ex_ends[:, None] + np.arange(_FRAME_FOOTER)
    data[foot] = _mask(crcs).view(np.uint8).reshape(n, _FRAME_FOOTER)
    return EncodedBatch(data=data, starts=starts)


# Segments at least this long on average are copied one by one (memcpy); shorter ones are
# assembled by one vectorized byte gather, whose cost is per byte.
_GATHER_MIN_SEGMENT = 96


def _distinct(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each element's value), cheap when all are equal."""
    if len(v) == 0:
        return v[:0], np.zeros(0, dtype=np.int64)
    lo = v.min()
    if lo == v.max():
        return v[:1].copy(), np.zeros(len(v), dtype=np.int64)
    u, inv = np.unique(v, return_inverse=True)
    return u, inv.astype(np.int64, copy=False).reshape(-1)


def _gather_segments(
    src: np.ndarray, s: np.ndarray, out_start: np.ndarray, ln: np.ndarray, total: int
) -> np.ndarray:
    """Concatenate `src[s[j]:s[j] + ln[j]]` over all j with one byte gather.

    The gather index is built as a running sum: ones everywhere, and at the first output byte
    of each segment the jump from the previous segment's last source byte.
    """
    if total == 0:
        return np.zeros(0, dtype=np.uint8)
    keep = ln > 0
    s, ln, pos = s[keep], ln[keep], out_start[:-1][keep]
    jumps = np.empty(len(s), dtype=np.int64)
    jumps[0] = s[0]
    np.subtract(s[1:], s[:-1] + ln[:-1] - 1, out=jumps[1:])
    idx = np.ones(total, dtype=np.int64)
    idx[pos] = jumps
    np.cumsum(idx, out=idx)
    return src[idx]


def _copy_segments(
    src: np.ndarray, s: np.ndarray, out_start: np.ndarray, ln: np.ndarray, total: int
) -> np.ndarray:
    """Concatenate `src[s[j]:s[j] + ln[j]]` over all j, one memcpy per segment."""
    data = np.empty(total, dtype=np.uint8)
    dv, sv = data.data, np.ascontiguousarray(src).data
    for o, a, k in zip(out_start[:-1].tolist(), s.tolist(), ln.tolist(), strict=True):
        if k:
            dv[o : o + k] = sv[a : a + k]
    return data


def _entry_headers(col: Column, plen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row bytes of each map entry up to its payload: (matrix, used lengths, entry lengths)."""
    key = col.name.encode()
    n = len(plen)
    prefix = bytes([_LEN_FIELD_1]) + _varint_bytes(len(key)) + key + bytes([_LEN_FIELD_2])
    if col.kind == "bytes":
        tag = _TAG_BYTES_LIST
        inner = np.ones(n, dtype=bool)
    else:
        tag = _TAG_FLOAT_LIST if col.kind == "float" else _TAG_INT64_LIST
        inner = plen > 0
    len_l = np.where(inner, 1 + varint_len(plen) + plen, 0)
    len_f = 1 + varint_len(len_l) + len_l
    body = len(prefix) + varint_len(len_f) + len_f
    entry = 1 + varint_len(body) + body
    mat = np.zeros((n, 1 + 10 + len(prefix) + 1 + 3 * 10 + 1), dtype=np.uint8)
    rows = np.arange(n)
    mat[:, 0] = _LEN_FIELD_1
    c = _put_varints(mat, np.ones(n, dtype=np.int64), body)
    mat[rows[:, None], c[:, None] + np.arange(len(prefix))] = np.frombuffer(prefix, dtype=np.uint8)
    c = _put_varints(mat, c + len(prefix), len_f)
    mat[rows, c] = tag
    c = _put_varints(mat, c + 1, len_l)
    if inner.all():
        mat[rows, c] = _LEN_FIELD_1
        c = _put_varints(mat, c + 1, plen)
    elif inner.any():
        r = np.flatnonzero(inner)
        mat[r, c[r]] = _LEN_FIELD_1
        c[r] = _put_varints_rows(mat, r, c[r] + 1, plen[r])
    return mat, c, entry


# --- decoding of TFRecord framing (verification without TensorFlow) ----------------------------


class FramingError(ValueError):
    """A TFRecord file whose framing or CRCs are wrong; the message names the offset."""


def iter_records(path: str, compression: str = "none", check_crc: bool = True):
    """Yield the records of a TFRecord file, checking both CRCs of each."""
    import gzip
    import zlib

    with open(path, "rb") as raw:
        if compression == "gzip":
            data = gzip.decompress(raw.read())
        elif compression == "zlib":
            data = zlib.decompress(raw.read())
        else:
            data = raw.read()
    view = memoryview(data)
    pos, index = 0, 0
    while pos < len(data):
        if len(data) - pos < _FRAME_HEADER:
            raise FramingError(f"{path}: truncated record header at byte {pos} (record {index})")
        length = int.from_bytes(view[pos : pos + 8], "little")
        if check_crc and int.from_bytes(view[pos + 8 : pos + 12], "little") != masked_crc32c(
            bytes(view[pos : pos + 8])
        ):
            raise FramingError(f"{path}: corrupted length at byte {pos} (record {index})")
        end = pos + _FRAME_HEADER + length
        if end + _FRAME_FOOTER > len(data):
            raise FramingError(
                f"{path}: truncated record at byte {pos} (record {index}): needs {length} bytes"
            )
        body = view[pos + _FRAME_HEADER : end]
        if check_crc and int.from_bytes(view[end : end + 4], "little") != masked_crc32c(
            bytes(body)
        ):
            raise FramingError(f"{path}: data CRC mismatch in record {index} at byte {pos}")
        yield bytes(body)
        pos = end + _FRAME_FOOTER
        index += 1
