"""The index beside each uncompressed shard: where every record starts, in CRC-checked blocks.

`index/<name>-<split>.tfindex-00000-of-00004` indexes `<name>-<split>.tfrecord-00000-of-00004`
(names from `dataops.naming`; in a subdirectory, so tools that take every file named like a
shard, TFDS's among them, never pick it up).
With it the loader reads a shard a block (about 1 MiB) at a time, checks the block's CRC-32C,
and cuts the records out at known offsets: no per-record step in Python or in tf.data. The
shard itself stays a plain TFRecord file that any reader takes.

Format, little-endian:

    magic        8 bytes        b"DOTFIDX1"
    num_records  uint64         n
    num_blocks   uint64         m
    offsets      uint64[n + 1]  byte offset of record i's frame in the shard; offsets[n] = shard size
    block_first  uint64[m + 1]  first record of block j; block_first[m] = n
    block_crc    uint32[m]      CRC-32C (unmasked) of the shard bytes of block j, framing included

A block closes at the first record boundary at least `BLOCK_BYTES` after its start, so the
layout depends on the records alone (not on batch sizes or threads) and the index is as
reproducible as the shard.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c as _crc32c
import numpy as np

from dataops.errors import DatasetError

MAGIC = b"DOTFIDX1"
HEADER = struct.Struct("<8sQQ")
BLOCK_BYTES = 1 << 20
FRAME_HEADER = 12  # uint64 payload length, uint32 masked CRC-32C of the length
FRAME_OVERHEAD = 16  # the header and, after the payload, its uint32 masked CRC-32C
EDGE_BYTES = 1 << 16  # the quick content check reads this much at each end of a shard


def edges_crc32c(path: str | Path) -> int:
    """CRC-32C of a file's first and last `EDGE_BYTES` (of the whole file when it is smaller
    than twice that): the quick content check recorded per shard in metadata.json. It reads
    128 KiB whatever the size, and differs for a same-size file with other records."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= 2 * EDGE_BYTES:
            return int(_crc32c.crc32c(f.read()))
        head = f.read(EDGE_BYTES)
        f.seek(size - EDGE_BYTES)
        return int(_crc32c.crc32c(f.read(EDGE_BYTES), _crc32c.crc32c(head)))


def file_identity(path: str | Path) -> tuple[int, int, int, int]:
    """`(device, inode, size, mtime_ns)`: what changes when a file is rewritten or replaced."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _fd_identity(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def changed_while_reading(path: str | Path) -> DatasetError:
    return DatasetError(
        f"{path}: changed while reading (its inode, size or mtime differ from when the loader "
        "was built) — the dataset was rewritten; build a new loader"
    )


class IndexWriter:
    """Builds the index of one shard while its bytes are written, in constant memory.

    `add(data, starts)` takes a run of whole records: `data` is their bytes, `starts` the
    positions of each record's frame in some larger buffer plus the end (so record i is
    `data[starts[i] - starts[0] : starts[i + 1] - starts[0]]`). Offsets go to the file as
    they come; only the block arrays (one entry per MiB) stay in memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "w+b")  # noqa: SIM115 - closed in close()
        self._f.write(HEADER.pack(MAGIC, 0, 0))
        self._pos = 0  # shard bytes so far
        self._n = 0  # records so far
        self._block_start = 0
        self._block_first = [0]
        self._crcs: list[int] = []
        self._crc = 0

    def add(self, data: memoryview, starts: np.ndarray) -> None:
        rel = np.asarray(starts, dtype=np.int64) - int(starts[0])
        k = len(rel) - 1
        if k <= 0:
            return
        self._f.write((self._pos + rel[:-1]).astype("<u8").tobytes())
        ends = self._pos + rel[1:]  # end offset of each record of this run
        a = 0  # start, in `data`, of the bytes not yet in a CRC
        while True:
            t = int(np.searchsorted(ends, self._block_start + BLOCK_BYTES, side="left"))
            if t >= k:
                break
            cut = int(rel[t + 1])
            self._crc = _crc32c.crc32c(data[a:cut], self._crc)
            self._crcs.append(self._crc)
            self._block_first.append(self._n + t + 1)
            self._block_start = self._pos + cut
            self._crc, a = 0, cut
        end = int(rel[k])
        if end > a:
            self._crc = _crc32c.crc32c(data[a:end], self._crc)
        self._pos += end
        self._n += k

    def close(self) -> tuple[int, str]:
        """Finish the file; return its size and sha256."""
        if self._block_first[-1] < self._n:
            self._crcs.append(self._crc)
            self._block_first.append(self._n)
        m = len(self._crcs)
        f = self._f
        f.write(np.array([self._pos], "<u8").tobytes())
        f.write(np.asarray(self._block_first, "<u8").tobytes())
        f.write(np.asarray(self._crcs, "<u4").tobytes())
        f.seek(0)
        f.write(HEADER.pack(MAGIC, self._n, m))
        f.flush()
        f.seek(0)
        h = hashlib.sha256()
        while chunk := f.read(1 << 20):
            h.update(chunk)
        size = f.tell()
        f.close()
        return size, h.hexdigest()


@dataclass(frozen=True)
class ShardIndex:
    """The block layout of one shard (the per-record offsets stay on disk until a block is read)."""

    shard: str
    path: str
    num_records: int
    block_first: np.ndarray  # int64[m + 1]
    block_crc: np.ndarray  # uint32[m]
    sha256: str | None = None  # the index's sha256 in metadata.json, to blame the right file
    shard_identity: tuple[int, int, int, int] | None = None  # when the loader was built
    index_identity: tuple[int, int, int, int] | None = None

    @property
    def num_blocks(self) -> int:
        return len(self.block_crc)

    def blocks_for(self, start: int, count: int) -> list[tuple[int, int, int]]:
        """`(block, skip, take)` covering records [start, start + count) of the shard."""
        if count <= 0:
            return []
        bf = self.block_first
        first = int(np.searchsorted(bf, start, side="right")) - 1
        last = int(np.searchsorted(bf, start + count, side="left"))
        out = []
        for j in range(first, last):
            lo, hi = max(start, int(bf[j])), min(start + count, int(bf[j + 1]))
            out.append((j, lo - int(bf[j]), hi - lo))
        return out


def read_index(
    shard: str | Path,
    path: str | Path,
    num_records: int,
    shard_bytes: int,
    *,
    sha256: str | None = None,
    identities: dict[str, tuple[int, int, int, int]] | None = None,
) -> ShardIndex:
    """Read and check an index's header and block arrays against what metadata.json promises.

    `sha256` (the index's, from metadata.json) lets a later block failure blame the index
    rather than the shard when the index is what changed; `identities` (file → identity when
    the loader was built) make a rewrite during a read an error of its own.
    """
    path = Path(path)
    identities = identities or {}
    try:
        with open(path, "rb") as f:
            if str(path) in identities and _fd_identity(f.fileno()) != identities[str(path)]:
                raise changed_while_reading(path)
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                raise DatasetError(f"{path}: truncated shard index ({len(head)} bytes)")
            magic, n, m = HEADER.unpack(head)
            if magic != MAGIC:
                raise DatasetError(f"{path}: not a dataops shard index (magic {magic!r})")
            if n != num_records:
                raise DatasetError(
                    f"{shard}: metadata.json says {num_records} examples, its index {os.path.relpath(path, Path(shard).parent)} lists {n}"
                )
            f.seek(HEADER.size + 8 * n)
            tail = f.read(8 + 8 * (m + 1) + 4 * m)
    except FileNotFoundError:
        raise DatasetError(f"{path}: shard index missing (run `dataops verify`)") from None
    if (
        len(tail) != 8 + 8 * (m + 1) + 4 * m
        or len(tail) + HEADER.size + 8 * n != path.stat().st_size
    ):
        raise DatasetError(f"{path}: truncated or padded shard index")
    size = int(np.frombuffer(tail, "<u8", 1)[0])
    block_first = np.frombuffer(tail, "<u8", m + 1, 8).astype(np.int64)
    block_crc = np.frombuffer(tail, "<u4", m, 8 + 8 * (m + 1)).copy()
    if size != shard_bytes:
        raise DatasetError(
            f"{path}: indexes a shard of {size} bytes, metadata.json says {shard_bytes}"
        )
    if block_first[0] != 0 or block_first[-1] != n or (m and not np.all(np.diff(block_first) > 0)):
        raise DatasetError(f"{path}: corrupt block table")
    return ShardIndex(
        str(shard),
        str(path),
        n,
        block_first,
        block_crc,
        sha256,
        identities.get(str(shard)),
        identities.get(str(path)),
    )


def _blame(index: ShardIndex, where: str, problem: str) -> DatasetError:
    """The error for a block that failed its check: on the index when the index is what differs
    from metadata.json (its sha256), else on the shard."""
    if index.sha256 is not None:
        h = hashlib.sha256()
        with open(index.path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != index.sha256:
            return DatasetError(
                f"{index.path}: sha256 {h.hexdigest()}, metadata.json says {index.sha256} — "
                f"the shard index is corrupt (found reading {where.split(': ', 1)[1]} of {index.shard})"
            )
    return DatasetError(f"{where}: {problem}")


def read_block(index: ShardIndex, block: int) -> tuple[bytes, np.ndarray]:
    """Block `block` of the shard: its bytes, checked against the block's CRC-32C and the
    record framing, and each record's frame offset within them (plus the end)."""
    first, last = int(index.block_first[block]), int(index.block_first[block + 1])
    with open(index.path, "rb") as f:
        if index.index_identity is not None and _fd_identity(f.fileno()) != index.index_identity:
            raise changed_while_reading(index.path)
        raw = os.pread(f.fileno(), 8 * (last - first + 1), HEADER.size + 8 * first)
    offs = np.frombuffer(raw, "<u8").astype(np.int64)
    where = f"{index.shard}: records {first}-{last - 1} (index block {block}"
    if len(offs) != last - first + 1 or np.any(np.diff(offs) < FRAME_OVERHEAD):
        raise _blame(index, where + ")", "the shard index is corrupt")
    where += f", bytes {int(offs[0])}-{int(offs[-1])})"
    fd = os.open(index.shard, os.O_RDONLY)
    try:
        if index.shard_identity is not None and _fd_identity(fd) != index.shard_identity:
            raise changed_while_reading(index.shard)
        blob = os.pread(fd, int(offs[-1] - offs[0]), int(offs[0]))
    finally:
        os.close(fd)
    if len(blob) != offs[-1] - offs[0]:
        raise _blame(index, where, "the shard is truncated")
    if _crc32c.crc32c(blob) != int(index.block_crc[block]):
        raise _blame(index, where, "bytes do not match their CRC-32C — the shard is corrupt")
    rel = offs - offs[0]
    u8 = np.frombuffer(blob, np.uint8)
    lengths = u8[rel[:-1, None] + np.arange(8)].copy().view("<u8").ravel().astype(np.int64)
    if not np.array_equal(lengths, np.diff(rel) - FRAME_OVERHEAD):
        raise _blame(index, where, "record framing does not match the shard index")
    return blob, rel
