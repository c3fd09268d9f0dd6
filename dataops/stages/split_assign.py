"""Which split each snapshot row goes to: a hash of (seed, key) placed on the cumulative ratios,
and the per-run cache of it (one byte per row on disk) that spares the later passes the hashing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops.errors import DatasetError


def assign_splits(keys: list[Any], ratios: dict[str, float], seed: int) -> np.ndarray:
    """Split index of each key: a hash of (seed, key) placed on the cumulative ratios.

    u = the first 8 bytes of sha256(f"{seed}:{key}") read as a big-endian integer / 2**64;
    a row keeps its split when other rows are added or removed.
    """
    return _place(_heads(f"{seed}:{k}".encode() for k in keys), ratios)


def split_keys(keys: pa.Array | pa.ChunkedArray, ratios: dict[str, float], seed: int) -> np.ndarray:
    """`assign_splits` of an Arrow key column, to the same index: a text or integer column
    becomes the messages `f"{seed}:{key}"` in Arrow (an integer's decimal digits are
    `str(int)`'s, a missing key is `"None"` as `f"{None}"`), without a Python string per key."""
    if pa.types.is_integer(keys.type):
        keys = pc.cast(keys, pa.string())
    elif not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
        return assign_splits(keys.to_pylist(), ratios, seed)
    if keys.null_count:
        keys = pc.fill_null(keys, "None")
    prefix, empty = pa.scalar(f"{seed}:", keys.type), pa.scalar("", keys.type)
    messages = pc.binary_join_element_wise(prefix, keys, empty)
    return _place(_heads(messages.cast(pa.large_binary()).to_pylist()), ratios)


_SHA256 = hashlib.sha256
_DIGEST = type(hashlib.sha256()).digest


def _heads(messages: Iterable[bytes]) -> np.ndarray:
    """u of each message: the first 8 bytes of its sha256 as a big-endian uint64 / 2**64.
    The hashing loop runs in C (`map` over hashlib's constructor and `digest`); the digests
    are joined and their heads read in one go (uint64 to float64 rounds to nearest, as
    `int.from_bytes(...) / 2.0**64` does)."""
    digests = b"".join(map(_DIGEST, map(_SHA256, messages)))
    return np.frombuffer(digests, dtype=">u8")[::4].astype(np.float64) / 2.0**64


def _place(u: np.ndarray, ratios: dict[str, float]) -> np.ndarray:
    """The split index of each u in [0, 1): its place on the cumulative ratios."""
    bounds = np.cumsum(list(ratios.values()))
    bounds[-1] = 1.0
    return np.searchsorted(bounds, u, side="right").clip(max=len(bounds) - 1)


class SplitCache:
    """The split index of every snapshot row, one byte each in an unnamed scratch file (in
    the process's scratch folder when one is set): the first full pass hashes the keys and
    writes it, the later passes (pass 2, a refit) read it back instead of hashing again.
    Disk, not RAM, so memory does not grow with the snapshot. Without a file (the Beam
    driver's workers), every pass hashes."""

    def __init__(self, file: Any = None) -> None:
        self.file = file
        self.complete = False  # a whole pass was written

    def start(self) -> bool:
        """Begin a pass; True when the split indexes are read back from the file."""
        if self.file is None:
            return False
        self.file.seek(0)
        if not self.complete:
            self.file.truncate()
        return self.complete

    def read(self, n: int) -> np.ndarray:
        data = self.file.read(n)
        if len(data) != n:
            raise DatasetError(
                f"preprocess: split scratch file ended early ({len(data)} of {n} rows)"
            )
        return np.frombuffer(data, dtype=np.int8).astype(np.intp)

    def write(self, split: np.ndarray) -> None:  # at most 100 splits (config): int8 fits
        if self.file is not None:
            self.file.write(split.astype(np.int8).tobytes())

    def done(self) -> None:
        self.complete = self.file is not None
