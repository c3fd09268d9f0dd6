"""Integrity: what a loader checks when it is built, and the one-line name of a read failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataops.errors import DatasetError
from dataops.fsutil import sha256_file
from dataops.loading.options import Verify
from dataops.loading.splits import Segment


def check_file(p: Path, num_bytes: int, sha256: str, what: str, verify: Verify) -> None:
    """A present file's size (and, with verify="sha256", content) against metadata.json."""
    if verify == "none":
        return
    size = p.stat().st_size
    if size != num_bytes:
        raise DatasetError(
            f"{p}: {size} bytes, metadata.json says {num_bytes} — the {what} is truncated or corrupted"
        )
    if verify == "sha256" and (digest := sha256_file(p)) != sha256:
        raise DatasetError(
            f"{p}: sha256 {digest}, metadata.json says {sha256} — the {what} is corrupted"
        )


def check_files(segments: list[Segment], kind: str, verify: Verify) -> None:
    """Every file the segments read is present, with the size (or sha256) metadata.json says."""
    if kind == "snapshot":
        for seg in segments:
            if not Path(seg.file).is_dir():
                raise DatasetError(f"{seg.file}: missing (the snapshot of split '{seg.split}')")
        return
    for file, shard in {s.file: s.shard for s in segments if s.shard is not None}.items():
        p = Path(file)
        if not p.is_file():
            raise DatasetError(
                f"{p}: missing (metadata.json lists it with {shard.num_examples} examples; run `dvc pull`?)"
            )
        check_file(p, shard.num_bytes, shard.sha256, "shard", verify)
        if shard.index is not None:
            ip = p.with_name(shard.index.file)
            if not ip.is_file():
                raise DatasetError(
                    f"{ip}: missing (metadata.json lists it as the index of {p.name}; run `dvc pull`?)"
                )
            check_file(ip, shard.index.num_bytes, shard.index.sha256, "shard index", verify)


def diagnose(
    err: Exception, segments: list[Segment], kind: str, compression: str, where: str
) -> DatasetError:
    """Turn a TensorFlow read/parse error into a DatasetError that names the bad shard."""
    from dataops.codec import FramingError, iter_records

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
    first = _tf_message(err)
    if problems:
        return DatasetError("corrupted shard: " + "; ".join(problems) + f" (TensorFlow: {first})")
    return DatasetError(f"reading {where} failed: {first}")


def _tf_message(err: Any) -> str:
    return str(getattr(err, "message", str(err))).splitlines()[0]
