"""The shard writer and the threads of a split's write: one shard file (optional GZIP/ZLIB
compression, sha256 of the bytes on disk, the shard index), compression, hashing and writes on
a background thread, the Parquet read-ahead, the GZIP member pool."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dataops.config import SerializeParams
from dataops.metadata import (
    IndexInfo,
    ShardInfo,
)
from dataops.naming import ShardName
from dataops.tfrecord.shard_index import IndexWriter, edges_crc32c

GZIP_MEMBER_BYTES = 4 << 20
"""GZIP shards are a series of gzip members, one per 4 MiB of records (cut at fixed offsets of
the uncompressed stream, so the bytes do not depend on batch sizes or threads). Members are
compressed in parallel; gzip readers, TensorFlow's included, read the concatenation as one stream."""

# A fixed gzip header: no name, mtime 0, no extra flags, OS 255 ("unknown"), whatever the
# deflate library or platform would have written.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _deflate_module(engine: str) -> Any:
    if engine == "isal":
        from isal import isal_zlib

        return isal_zlib
    return zlib


def _gzip_member(data: bytes, level: int, engine: str) -> bytes:
    """One gzip member: the fixed header, raw deflate at `level`, crc32 and size."""
    z = _deflate_module(engine).compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return b"".join((_GZIP_HEADER, z.compress(data), z.flush(), trailer))


class ShardWriter:
    """One shard file: optional GZIP/ZLIB compression, sha256 of the bytes on disk, and the
    shard index (uncompressed shards only; see `dataops.tfrecord.shard_index`)."""

    def __init__(
        self,
        out: Path,
        name: ShardName,
        params: SerializeParams,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.out = out
        self.path = path = out / name.file
        self._raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self._level = params.level
        self._engine = params.deflate
        self._z: Any = None
        self._gzip = params.compression == "gzip"
        self._buf = bytearray()
        self._members: deque[Future[bytes]] = deque()
        self._pool = pool
        self.index = None
        if params.compression == "none":
            (out / name.index_file).parent.mkdir(exist_ok=True)
            self.index = IndexWriter(out / name.index_file)
        if params.compression == "zlib":
            self._z = _deflate_module(self._engine).compressobj(
                self._level, zlib.DEFLATED, zlib.MAX_WBITS
            )

    def write(self, data: Any) -> int:
        self._raw.write(data)
        self._hash.update(data)
        return len(data)

    def _member(self, data: bytes) -> None:
        if self._pool is None:
            self.write(_gzip_member(data, self._level, self._engine))
            return
        while len(self._members) >= 4:  # bounded memory: at most 4 members in flight
            self.write(self._members.popleft().result())
        self._members.append(self._pool.submit(_gzip_member, data, self._level, self._engine))

    def add(self, data: memoryview, starts: np.ndarray) -> None:
        """Append whole records: `data`, whose frames start at `starts` (minus `starts[0]`)."""
        if self._gzip:
            self._buf += data
            while len(self._buf) >= GZIP_MEMBER_BYTES:
                self._member(bytes(self._buf[:GZIP_MEMBER_BYTES]))
                del self._buf[:GZIP_MEMBER_BYTES]
        elif self._z is not None:
            self.write(self._z.compress(data))
        else:
            self.write(data)
            if self.index is not None:
                self.index.add(data, starts)

    def finish(self, num_examples: int) -> ShardInfo:
        """Close the shard and describe it for `metadata.json`: the one place a `ShardInfo`
        is built, whatever the driver."""
        size, digest, index, edges = self.close()
        return ShardInfo(
            file=self.path.name,
            num_examples=num_examples,
            num_bytes=size,
            sha256=digest,
            index=index,
            edges_crc32c=edges,
        )

    def close(self) -> tuple[int, str, IndexInfo | None, int]:
        if self._gzip:
            if self._buf or not self._members:
                self._member(bytes(self._buf))
                self._buf.clear()
            while self._members:
                self.write(self._members.popleft().result())
        elif self._z is not None:
            self.write(self._z.flush())
        self._raw.close()
        index = None
        if self.index is not None:
            isize, idigest = self.index.close()
            index = IndexInfo(
                file=self.index.path.relative_to(self.out).as_posix(),
                num_bytes=isize,
                sha256=idigest,
            )
        return self.path.stat().st_size, self._hash.hexdigest(), index, edges_crc32c(self.path)


class _Pipe:
    """Compression, hashing and file writes on one background thread, in submission order.

    They release the GIL, so they overlap with the encoding of the next batch; the bytes are
    the same as when done inline. At most `depth` batches wait, so memory stays bounded.
    """

    def __init__(self, depth: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataops-serialize")
        self._pending: deque[Future[Any]] = deque()
        self._depth = depth

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        fut = self._pool.submit(fn, *args)
        self._pending.append(fut)
        return fut

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def read_ahead(batches: Iterator[Any], pool: ThreadPoolExecutor) -> Iterator[Any]:
    """Yield from `batches`, reading the next one on `pool` meanwhile (Parquet decoding
    releases the GIL); one extra batch in memory."""
    fut = pool.submit(next, batches, None)
    while True:
        item = fut.result()
        if item is None:
            return
        fut = pool.submit(next, batches, None)
        yield item


@contextmanager
def shard_threads(
    params: SerializeParams,
) -> Iterator[tuple[_Pipe, ThreadPoolExecutor, ThreadPoolExecutor | None]]:
    """The threads of one split: the write pipe, the Parquet read-ahead and, for GZIP, the
    deflate pool (None otherwise). All are shut down on the way out, error or not."""
    pipe = _Pipe()
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataops-read")
    gz = (
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="dataops-gzip")
        if params.compression == "gzip"
        else None
    )
    try:
        yield pipe, reader, gz
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        pipe.close()
        if gz is not None:
            gz.shutdown(wait=True, cancel_futures=True)
