"""Integrity of a dataset directory against its `metadata.json`, without TensorFlow.

What a user runs after `dvc pull`: every shard present, with the size, sha256, record framing,
CRCs and example count that the metadata promises, and no stray shard files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from dataops.codec import FramingError, iter_records
from dataops.errors import DatasetError
from dataops.metadata import DatasetMetadata, read_metadata


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
    for path in sorted(directory.glob(f"{meta.name}-*.tfrecord-*")):
        if path.name not in expected:
            problems.append(f"{path}: shard not listed in metadata.json")
    return VerifyResult(directory=directory, metadata=meta, problems=problems)


def require_intact(directory: str | Path) -> DatasetMetadata:
    """Raise DatasetError naming every problem, or return the metadata."""
    result = verify_dataset(directory)
    if result.problems:
        raise DatasetError("\n".join(result.problems))
    return result.metadata
