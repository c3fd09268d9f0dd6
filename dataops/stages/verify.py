"""Integrity of a dataset directory against its `metadata.json`, without TensorFlow.

What a user runs after `dvc pull`: every shard present, with the size, sha256, record framing,
CRCs and example count that the metadata promises; every shard index with its size and sha256,
its blocks' CRC-32C and offsets agreeing with the shard; and no stray shard or index files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from dataops import naming
from dataops.errors import DatasetError
from dataops.metadata import DatasetMetadata, ShardInfo, read_metadata
from dataops.tfrecord.codec import FramingError, iter_records
from dataops.tfrecord.shard_index import read_block, read_index


@dataclass(frozen=True)
class VerifyResult:
    directory: Path
    metadata: DatasetMetadata
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_dataset(directory: str | Path, check_records: bool = True) -> VerifyResult:
    """Check every shard; return one problem line per mismatch (an empty list means intact)."""
    directory = Path(directory)
    meta = read_metadata(directory)
    problems: list[str] = []
    expected = set()
    for split in meta.splits:
        total = sum(s.num_examples for s in split.shards)
        if total != split.num_examples:
            problems.append(
                f"split '{split.name}': metadata says {split.num_examples} examples, its shards list {total}"
            )
        for shard in split.shards:
            expected.add(shard.file)
            if shard.index is not None:
                expected.add(shard.index.file)
            path = directory / shard.file
            if not path.is_file():
                problems.append(f"{path}: missing (split '{split.name}' needs it)")
                continue
            size = path.stat().st_size
            if size != shard.num_bytes:
                problems.append(f"{path}: {size} bytes, metadata says {shard.num_bytes}")
            digest = _sha256(path)
            if digest != shard.sha256:
                problems.append(f"{path}: sha256 {digest}, metadata says {shard.sha256}")
            if check_records:
                try:
                    count = sum(1 for _ in iter_records(str(path), meta.compression))
                except (FramingError, OSError, EOFError) as err:
                    problems.append(str(err) if str(path) in str(err) else f"{path}: {err}")
                    continue
                if count != shard.num_examples:
                    problems.append(
                        f"{path}: holds {count} examples, metadata says {shard.num_examples}"
                    )
            if shard.index is not None:
                problems += _verify_index(directory, shard, size, check_records)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        named = naming.parse(rel)
        if named and named[1].dataset == meta.name and rel not in expected:
            what = "shard" if named[0] == "shard" else "shard index"
            problems.append(f"{path}: {what} not listed in metadata.json")
    return VerifyResult(directory=directory, metadata=meta, problems=problems)


def _verify_index(
    directory: Path, shard: ShardInfo, shard_size: int, check_blocks: bool
) -> list[str]:
    """The shard's index against metadata.json, and (with `check_blocks`) every block's CRC-32C
    and record framing against the shard."""
    assert shard.index is not None
    path = directory / shard.index.file
    if not path.is_file():
        return [f"{path}: missing (the index of {shard.file})"]
    problems = []
    size = path.stat().st_size
    if size != shard.index.num_bytes:
        problems.append(f"{path}: {size} bytes, metadata says {shard.index.num_bytes}")
    digest = _sha256(path)
    if digest != shard.index.sha256:
        problems.append(f"{path}: sha256 {digest}, metadata says {shard.index.sha256}")
    if problems or not check_blocks or shard_size != shard.num_bytes:
        return problems
    try:
        index = read_index(directory / shard.file, path, shard.num_examples, shard.num_bytes)
        for block in range(index.num_blocks):
            read_block(index, block)
    except DatasetError as err:
        problems.append(str(err))
    return problems


def require_intact(directory: str | Path) -> DatasetMetadata:
    """Raise DatasetError naming every problem, or return the metadata."""
    result = verify_dataset(directory)
    if result.problems:
        raise DatasetError("\n".join(result.problems))
    return result.metadata
