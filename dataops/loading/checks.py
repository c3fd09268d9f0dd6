"""Integrity: what a loader checks when it is built, and the one-line name of a read failure.

When a loader is built (`verify=`):

| check                                              | none | size | quick (default) | sha256 |
|----------------------------------------------------|------|------|-----------------|--------|
| files present, sizes as in metadata.json           |      | yes  | yes             | yes    |
| split totals = sum of shard counts                 | yes  | yes  | yes             | yes    |
| index header: record count and shard size          |      | yes  | yes             | yes    |
| shard index sha256 (a small file: 8 bytes a record)|      |      | yes             | yes    |
| shard's first and last 64 KiB (`edges_crc32c`)     |      |      | yes             |        |
| shard sha256 (every byte)                          |      |      |                 | yes    |

While reading, every index block is checked against its CRC-32C and framing, every shard
and index against its inode/size/mtime when the loader was built ("changed while reading"),
and every shard read to its end against its count in metadata.json.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataops.errors import DatasetError
from dataops.fsutil import sha256_file
from dataops.loading.options import Verify
from dataops.loading.splits import Segment
from dataops.metadata import DatasetMetadata
from dataops.tfrecord.shard_index import (
    ShardIndex,
    changed_while_reading,
    edges_crc32c,
    file_identity,
    read_index,
)

log = logging.getLogger(__name__)

Identity = tuple[int, int, int, int]


@dataclass
class Opened:
    """What building a loader learnt of its files: their identities and the shard indexes read."""

    identities: dict[str, Identity] = field(default_factory=dict)
    indexes: dict[str, ShardIndex] = field(default_factory=dict)


def _check_size(p: Path, num_bytes: int, what: str) -> None:
    size = p.stat().st_size
    if size != num_bytes:
        raise DatasetError(
            f"{p}: {size} bytes, metadata.json says {num_bytes} — the {what} is truncated or corrupted"
        )


def _check_sha256(p: Path, sha256: str, what: str) -> None:
    if (digest := sha256_file(p)) != sha256:
        raise DatasetError(
            f"{p}: sha256 {digest}, metadata.json says {sha256} — the {what} is corrupted"
        )


def check_split_totals(meta: DatasetMetadata, segments: list[Segment]) -> None:
    """metadata.json agrees with itself: each read split's count is the sum of its shards'."""
    for name in dict.fromkeys(s.split for s in segments):
        split = meta.split(name)
        total = sum(sh.num_examples for sh in split.shards)
        if split.shards and total != split.num_examples:
            raise DatasetError(
                f"metadata.json: split '{name}' says {split.num_examples} examples, its shards list {total}"
            )


def check_files(
    segments: list[Segment], kind: str, verify: Verify, meta: DatasetMetadata
) -> Opened:
    """Every file the segments read checked as `verify` says (see the module's table)."""
    opened = Opened()
    if kind == "snapshot":
        for seg in segments:
            if not Path(seg.file).is_dir():
                raise DatasetError(f"{seg.file}: missing (the snapshot of split '{seg.split}')")
        return opened
    check_split_totals(meta, segments)
    for file, shard in {s.file: s.shard for s in segments if s.shard is not None}.items():
        p = Path(file)
        if not p.is_file():
            raise DatasetError(
                f"{p}: missing (metadata.json lists it with {shard.num_examples} examples; run `dvc pull`?)"
            )
        opened.identities[file] = file_identity(p)
        ip = p.parent / shard.index.file if shard.index is not None else None
        if ip is not None:
            if not ip.is_file():
                raise DatasetError(
                    f"{ip}: missing (metadata.json lists it as the index of {p.name}; run `dvc pull`?)"
                )
            opened.identities[str(ip)] = file_identity(ip)
        if verify == "none":
            continue
        _check_size(p, shard.num_bytes, "shard")
        if ip is not None and shard.index is not None:
            _check_size(ip, shard.index.num_bytes, "shard index")
        if verify == "sha256":
            _check_sha256(p, shard.sha256, "shard")
        elif verify == "quick":
            if shard.edges_crc32c is None:
                log.debug(
                    "quick content check skipped: file=%s reason='no edges_crc32c in metadata.json (an older dataset)'",
                    p,
                )
            elif (crc := edges_crc32c(p)) != shard.edges_crc32c:
                raise DatasetError(
                    f"{p}: first/last 64 KiB have CRC-32C {crc:08x}, metadata.json says "
                    f"{shard.edges_crc32c:08x} — the shard was replaced or is corrupted"
                )
        if ip is not None and shard.index is not None:
            if verify in ("quick", "sha256"):
                _check_sha256(ip, shard.index.sha256, "shard index")
            opened.indexes[file] = read_index(
                p,
                ip,
                shard.num_examples,
                shard.num_bytes,
                sha256=shard.index.sha256,
                identities=opened.identities,
            )
    return opened


_PY_ERROR = re.compile(r"DatasetError: (.*)")


def from_tf_error(err: Any) -> DatasetError | None:
    """The DatasetError a reader raised inside a tf.data pipeline, from TensorFlow's error."""
    m = _PY_ERROR.search(str(getattr(err, "message", str(err))))
    return DatasetError(m.group(1)) if m else None


def diagnose(
    err: Exception,
    segments: list[Segment],
    kind: str,
    compression: str,
    where: str,
    identities: dict[str, Identity],
) -> DatasetError:
    """Turn a TensorFlow read/parse error into a one-line DatasetError naming the file."""
    from dataops.tfrecord.codec import FramingError, iter_records

    for file, before in identities.items():  # a rewrite explains any failure: say that first
        try:
            now = file_identity(file)
        except FileNotFoundError:
            now = None
        if now != before:
            return changed_while_reading(file)
    raised = from_tf_error(err)
    if raised is not None:
        return raised
    problems = []
    if kind == "tfrecord":
        for file, shard in {s.file: s.shard for s in segments if s.shard is not None}.items():
            try:
                count = sum(1 for _ in iter_records(file, compression))
            except (FramingError, OSError, EOFError) as bad:
                problems.append(str(bad) if file in str(bad) else f"{file}: {bad}")
                continue
            if count != shard.num_examples:
                problems.append(
                    f"{file}: holds {count} examples, metadata.json says {shard.num_examples}"
                )
            elif sha256_file(file) != shard.sha256:
                problems.append(
                    f"{file}: sha256 differs from metadata.json (records frame correctly but their content changed)"
                )
    if problems:
        return DatasetError("; ".join(problems))
    first = str(getattr(err, "message", str(err))).splitlines()[0]
    first = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", first)
    return DatasetError(f"reading {where} failed: {first}")
