"""Serialize on Beam: each shard written whole by one worker, `metadata.json` from their results.

The driver plans every split's shard boundaries with `plan_shards` (from the split's row count
and its first batch, as in-process); a task is one shard. A worker reads the shard's rows from
`<split>.parquet`, encodes and writes them with `write_shard` into a private temporary
directory on its own disk, then moves the files (shard, index) into the dataset directory —
a rename, or an upload to an object store: a shard file either is complete or absent. The
driver puts the `ShardInfo`s in shard order and writes `metadata.json` with
`dataset_metadata`; the whole directory is committed at once (`atomic_dir`).

With `to_remote`, the files go into a DVC remote's content-addressed layout instead and the
driver records the stage's `dvc.lock` entry (`dataops.beam.remote`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dataops.artifacts import PreprocessState
from dataops.beam import beam_args
from dataops.beam.io import (
    exists,
    is_url,
    iter_rows,
    open_parquet,
    output_dir,
    read_artifact,
    use_options,
    work_dir,
)
from dataops.beam.remote import (
    LockedOutput,
    RemoteTarget,
    input_folder,
    plan_target,
    record,
)
from dataops.beam.runner import run_tasks
from dataops.beam.upload import FileEntry, Put, mover, uploader
from dataops.config import DatasetParams, SerializeParams
from dataops.errors import DatasetError
from dataops.metadata import ShardInfo, SplitInfo, write_metadata
from dataops.naming import ShardName
from dataops.stages.preprocess import STATE_FILE, read_state
from dataops.stages.serialize import (
    SerializeResult,
    dataset_features,
    dataset_metadata,
    plan_shards,
    sample_split,
    write_dataset_info,
    write_shard,
)


def run_serialize_beam(
    params: SerializeParams,
    dataset: DatasetParams | str,
    preprocessed: str | Path,
    out: str | Path,
    options: str | Sequence[str] | None = None,
    to_remote: str | None = None,
) -> SerializeResult:
    """`run_serialize` on Beam: the same shards and `metadata.json`, byte for byte.

    `preprocessed` and `out` may be object-store URLs (`s3://...`, `gs://...`; the Beam
    options then carry the store's settings, e.g. `--s3_endpoint_url`). A local `out` is
    committed at once (`atomic_dir`); on an object store, where a prefix cannot be renamed,
    what was under `out` is deleted first and `metadata.json` is written last, after every
    shard: a dataset there is complete when its `metadata.json` exists.

    With `to_remote` (a DVC remote's name), `out` is a `dvc.yaml` stage's output and is not
    written at all: the workers upload the files into the remote's content-addressed layout and
    the driver writes the `.dir` manifest and the stage's `dvc.lock` entry
    (`dataops.beam.remote`); `dvc pull` fetches the same bytes. `preprocessed` may then be
    missing from the workspace: it is read from the remote at the version `dvc.lock` records.

    `dataset` is the name and card, as for `run_serialize`.
    """
    card = DatasetParams(name=dataset) if isinstance(dataset, str) else dataset
    name = card.name
    args = beam_args(options)
    target = None
    if to_remote is not None:
        target = plan_target(out, to_remote)  # before any work: every ConfigError first
        args = target.beam_args(args)
    use_options(args)
    where = input_folder(preprocessed, target, "preprocess")
    state_file = where(STATE_FILE)
    state = (
        read_state(preprocessed)
        if where.local
        else PreprocessState.loads(read_artifact(state_file), state_file)
    )
    features = dataset_features(state)
    splits = state.split_names
    totals: dict[str, int] = {}
    tasks: list[tuple[str, int, int, int, int]] = []
    parquet = {split: where(f"{split}.parquet") for split in splits}
    for split in splits:
        path = parquet[split]
        if not exists(path):
            raise DatasetError(f"{path}: not found — run the preprocess stage first")
        pf = open_parquet(path)
        totals[split] = total = pf.metadata.num_rows
        bounds = plan_shards(total, sample_split(pf, features, params), params)
        k = len(bounds) - 1
        tasks += [(split, i, k, bounds[i], bounds[i + 1]) for i in range(k)]
    with _destination(out, target) as (_, put):

        def write(
            task: tuple[str, int, int, int, int],
        ) -> Iterator[tuple[str, int, ShardInfo, list[FileEntry]]]:
            split, i, k, start, stop = task
            rows = iter_rows(parquet[split], start, stop, params.batch_rows)
            with tempfile.TemporaryDirectory(prefix="dataops-shard-") as scratch:
                info = write_shard(
                    rows, features, params, Path(scratch), ShardName(name, split, i, k)
                )
                if info.num_examples != stop - start:
                    raise DatasetError(
                        f"split '{split}': shard {i} holds {info.num_examples} examples, rows {start}..{stop} of {split}.parquet are {stop - start}"
                    )
                files = put(Path(scratch))  # a retried task writes the same bytes again
            yield split, i, info, files

        with work_dir(args) as work:
            done = sorted(run_tasks(tasks, write, args, work, label="shards"))
        infos = []
        for split in splits:
            shards = [info for s, _, info, _ in done if s == split]
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
        meta = dataset_metadata(params, card, state, features, infos)
        files = [f for *_, shard_files in done for f in shard_files]
        with tempfile.TemporaryDirectory(prefix="dataops-meta-") as scratch:
            write_dataset_info(scratch, meta)
            files += put(Path(scratch))
            write_metadata(scratch, meta)  # last: on an object store it marks the dataset whole
            files += put(Path(scratch))
        if target is not None:
            locked = record(target, files)
            return RemoteSerializeResult(out=Path(out), metadata=meta, remote=target, locked=locked)
    return SerializeResult(out=Path(out) if not is_url(out) else out, metadata=meta)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RemoteSerializeResult(SerializeResult):
    """`run_serialize_beam(..., to_remote=...)`: the output is in the DVC remote, not at `out`."""

    remote: RemoteTarget
    locked: LockedOutput
    """The output's `dvc.lock` entry (`md5: <md5>.dir`, `size`, `nfiles`)."""


@contextmanager
def _destination(out: str | Path, target: RemoteTarget | None) -> Iterator[tuple[str, Put]]:
    """Where the files go and how a worker puts its scratch directory there: moved into the
    output folder (`output_dir`), or uploaded into the DVC remote's object store."""
    if target is not None:
        yield target.objects, uploader(target.objects)
        return
    with output_dir(out) as dest:
        yield dest, mover(dest)
