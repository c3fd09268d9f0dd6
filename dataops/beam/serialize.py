"""Serialize on Beam: each shard written whole by one worker, `metadata.json` from their results.

The driver plans every split's shard boundaries with `plan_shards` (from the split's row count
and its first batch, as in-process); a task is one shard. A worker reads the shard's rows from
`<split>.parquet`, encodes and writes them with `write_shard` into a private temporary
directory and renames the files into the dataset directory: a shard file either is complete
or absent. The driver puts the `ShardInfo`s in shard order and writes `metadata.json` with
`dataset_metadata`; the whole directory is committed at once (`atomic_dir`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dataops.beam import beam_args
from dataops.beam.io import iter_rows, open_parquet
from dataops.beam.runner import run_tasks
from dataops.config import SerializeParams
from dataops.errors import DatasetError
from dataops.fsutil import atomic_dir
from dataops.metadata import FeatureInfo, ShardInfo, SplitInfo, shard_name, write_metadata
from dataops.preprocess import read_state
from dataops.serialize import (
    SerializeResult,
    dataset_metadata,
    plan_shards,
    sample_split,
    write_shard,
)


def run_serialize_beam(
    params: SerializeParams,
    name: str,
    preprocessed: str | Path,
    out: str | Path,
    options: str | Sequence[str] | None = None,
) -> SerializeResult:
    """`run_serialize` on Beam: the same shards and `metadata.json`, byte for byte."""
    args = beam_args(options)
    preprocessed = Path(preprocessed)
    state = read_state(preprocessed)
    features = [FeatureInfo.model_validate(f) for f in state["features"]]
    splits = [s["name"] for s in state["splits"]]
    totals: dict[str, int] = {}
    tasks: list[tuple[str, int, int, int, int]] = []
    for split in splits:
        path = preprocessed / f"{split}.parquet"
        if not path.exists():
            raise DatasetError(f"{path}: not found — run the preprocess stage first")
        pf = open_parquet(path)
        totals[split] = total = pf.metadata.num_rows
        bounds = plan_shards(total, sample_split(pf, features, params), params)
        k = len(bounds) - 1
        tasks += [(split, i, k, bounds[i], bounds[i + 1]) for i in range(k)]
    with atomic_dir(out) as tmp:

        def write(task: tuple[str, int, int, int, int]) -> Iterator[tuple[str, int, ShardInfo]]:
            split, i, k, start, stop = task
            rows = iter_rows(preprocessed / f"{split}.parquet", start, stop, params.batch_rows)
            info = _commit_shard(
                tmp, shard_name(name, split, i, k), lambda p: write_shard(rows, features, params, p)
            )
            if info.num_examples != stop - start:
                raise DatasetError(
                    f"split '{split}': shard {i} holds {info.num_examples} examples, rows {start}..{stop} of {split}.parquet are {stop - start}"
                )
            yield split, i, info

        with tempfile.TemporaryDirectory(prefix="dataops-beam-") as work:
            done = sorted(run_tasks(tasks, write, args, work, label="shards"))
        infos = []
        for split in splits:
            shards = [info for s, _, info in done if s == split]
            written = sum(s.num_examples for s in shards)
            if written != totals[split]:
                raise DatasetError(
                    f"split '{split}': wrote {written} examples, the Parquet file holds {totals[split]}"
                )
            infos.append(
                SplitInfo(
                    name=split,
                    num_examples=written,
                    num_bytes=sum(s.num_bytes for s in shards),
                    shards=shards,
                )
            )
        meta = dataset_metadata(params, name, state, infos)
        write_metadata(tmp, meta)
    return SerializeResult(out=Path(out), metadata=meta)


def _commit_shard(directory: Path, file: str, write: Any) -> ShardInfo:
    """Run `write(path)` into a private temporary directory, then move every file it made
    (the shard, its index) to the same place under `directory`; the temporary goes either way.
    A retried task simply writes the same bytes again."""
    scratch = directory / f".incomplete-{file}-{secrets.token_hex(4)}"
    scratch.mkdir()
    try:
        info: ShardInfo = write(scratch / file)
        for src in sorted(p for p in scratch.rglob("*") if p.is_file()):
            dst = directory / src.relative_to(scratch)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return info
