"""Pass 2's part files on Beam: each task writes, per split, its kept rows into one Arrow IPC
file; one worker per split appends them, in task order and batch by batch, into
`<split>.parquet` (the tables the in-process driver writes) and hands it over (`Put`: into the
staging folder, or with `--to-remote` into the DVC remote).

A write job is a group of splits of about equal rows (`balanced_groups`): one job per worker
at most, so the large train split is written alone while the others share a worker; the
splits of one job are written at once, one thread each (Arrow releases the GIL while it
encodes Parquet, the bulk of the work)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataops.beam.io import (
    is_url,
    join,
    open_parquet,
    read_bytes,
    remove,
)
from dataops.beam.upload import FileEntry, Put
from dataops.errors import DatasetError
from dataops.stages.preprocess import (
    Run,
    SplitWriter,
)
from dataops.stages.snapshot_files import PART_GLOB, SnapshotFiles, part_names


def snapshot_parts(snapshot: Any, objects: dict[str, str] | None = None) -> SnapshotFiles:
    """The parts of the snapshot folder `snapshot`: a local path or an object-store prefix,
    or — `objects`, its files by name (`InputFolder.objects`) — in a DVC remote."""
    if objects is not None:
        names = part_names(list(objects), str(snapshot))
        return SnapshotFiles([objects[n] for n in names], open_parquet)
    if not is_url(snapshot):
        return SnapshotFiles.local(snapshot)
    from apache_beam.io.filesystems import FileSystems

    try:
        found = FileSystems.match([join(snapshot, PART_GLOB)])[0].metadata_list
    except Exception:  # a prefix with no match raises on some filesystems
        found = []
    names = [m.path.rsplit("/", 1)[-1] for m in found]
    return SnapshotFiles(
        [join(snapshot, n) for n in part_names(names, str(snapshot))], open_parquet
    )


def part_name(split: int, first: int) -> str:
    return f"{split:03d}-{first:012d}.arrow"


def append_splits(
    run: Run,
    schema: pa.Schema,
    parts: str,
    plan: list[tuple[int, dict[int, list[int]]]],
    put: Put,
    job: Sequence[tuple[int, str]],
) -> list[tuple[str, int, list[FileEntry]]]:
    """`append_split` of each split of `job` (index, name), at once: the rows of each and
    the entries of its file (`put`'s)."""
    if len(job) == 1:
        return [(job[0][1], *append_split(run, schema, parts, plan, put, *job[0]))]
    with ThreadPoolExecutor(len(job), thread_name_prefix="dataops-split") as pool:
        done = [pool.submit(append_split, run, schema, parts, plan, put, i, n) for i, n in job]
        return [(name, *r.result()) for (_, name), r in zip(job, done, strict=True)]


def append_split(
    run: Run,
    schema: pa.Schema,
    parts: str,
    plan: list[tuple[int, dict[int, list[int]]]],
    put: Put,
    index: int,
    name: str,
) -> tuple[int, list[FileEntry]]:
    """Write `<name>.parquet` from the tasks' parts, in task order, batch by batch (the
    tables the in-process driver writes), as in-process, and `put` it (into the staging
    folder, or into the DVC remote); its rows and `put`'s entries."""
    with tempfile.TemporaryDirectory(prefix="dataops-split-") as scratch:
        writer = SplitWriter(Path(scratch), name, schema, run.params.batch_rows)
        rows = 0
        for first, sizes in plan:
            if index not in sizes:
                continue
            path = join(parts, part_name(index, first))
            for table in read_part(path, sizes[index]):
                writer.write(table)
                rows += table.num_rows
            remove(path)  # read once: the disk holds at most one copy of the output
        writer.close()
        return rows, put(Path(scratch))


def read_part(path: str, sizes: list[int]) -> Iterator[pa.Table]:
    """The tables of `sizes` rows written, in order, into the part file `path`."""
    source = pa.memory_map(path) if not is_url(path) else pa.BufferReader(read_bytes(path))
    with source, pa.ipc.open_file(source) as reader:
        k = 0
        for n in sizes:
            pending: list[pa.RecordBatch] = []
            have = 0
            while have < n:
                batch = reader.get_batch(k)
                k += 1
                pending.append(batch)
                have += batch.num_rows
            if have != n:
                raise DatasetError(f"{path}: a batch of {have} rows where {n} were written")
            yield pa.Table.from_batches(pending)
