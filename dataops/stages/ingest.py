"""Stage 1, ingest: read the declared sources, join them on the key, write a Parquet snapshot.

One source (the usual case) is streamed: each batch is written to the snapshot as it is read
(CSV in 8 MiB chunks; the Parquet encoding runs in a second thread), while a 64-bit hash of
every key is kept (spilled to disk past 16 MiB) to check that no key repeats. Memory does not
depend on the input's size (bench: 325 / 340 MiB peak for 0.13 / 1.07 GB of CSV). If a hash
repeats — a repeated key, or a collision — the general join below runs instead; it gives the
same bytes the streamed path gives whenever no key repeats (tested), so a collision costs only
time.

Several sources are joined: sources are read in batches; when the inputs are larger than
`ingest.partition_bytes` (input bytes, or Arrow bytes once read) they are hash-partitioned on
the key (64-bit FNV-1a) into temporary Arrow IPC files, a partition still larger than that is
split again, and each partition is joined on its own (a grace hash join). The joined
partitions are then merged back into the order of the first source, so the snapshot's bytes
do not depend on the partitioning. Peak memory is about 3 x partition_bytes plus a constant.

Keyless (`ingest.key: null`): each row's key is `<first source name>:<record index>`, the
index counting from 0 every record of its source (bad ones too, blank lines not); every source
is matched by that index.

Counts reconcile: every row read from a source is either joined or skipped with one reason,
per source (`counts.sources`), and every candidate example (a distinct key, an extra row with a
repeated key, or a bad row whose key cannot be read) is either written or skipped once, with
the first real reason (`counts.examples`, also the manifest's `skipped`). See `snapshot.Accounts`.

Modules: this one is the stage (run_ingest, the manifest); `stages.stream` is the one-source
path, `stages.join` the general join over `stages.partitions`; `stages.snapshot` holds what
they share (the writer, the accounts, the key hash).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dataops.artifacts import Manifest
from dataops.config import IngestParams, OnError
from dataops.errors import DatasetError
from dataops.fsutil import atomic_dir, fingerprint
from dataops.stages.join import join_all
from dataops.stages.snapshot import Joined, Progress
from dataops.stages.sources import manifest_entry
from dataops.stages.sources.base import KEYLESS_COLUMN, Source
from dataops.stages.sources.paths import resolve_source
from dataops.stages.stream import stream_one

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class IngestResult:
    out: Path
    num_rows: int
    skipped: dict[str, int]
    inputs_fingerprint: str


def run_ingest(
    params: IngestParams,
    root: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    progress: Progress | None = None,
) -> IngestResult:
    """Join the sources of `params` into the snapshot's parts
    (`out/snapshot-00000-of-0000N.parquet`, ...) plus `out/manifest.json`."""
    root = Path(root)
    sources = [resolve_source(params, root, i) for i in range(len(params.sources))]
    inputs = input_entries(sources, root)
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(prefix="dataops-ingest-") as scratch:
        snapshot = tmp  # the parts (`dataops.stages.snapshot_files`) beside the manifest
        joined = None
        if len(sources) == 1:
            joined = stream_one(sources[0], params, on_error, snapshot, Path(scratch), progress)
        if joined is None:
            joined = join_all(sources, params, on_error, snapshot, Path(scratch), progress)
        result = write_manifest(tmp, params, inputs(), joined)
    return replace(result, out=Path(out))


def input_entries(sources: list[Source], root: Path) -> Callable[[], dict[str, Any]]:
    """The manifest's `sources` (a sha256 of every input file), computed in a daemon thread
    while the sources are read (hashlib releases the GIL; the reading thread waits for the
    Parquet writer part of the time anyway); the returned function waits for them. Image
    folders are listed and hashed first, here: their listing may refuse the source (a file
    outside the project) before any row is read."""
    if any(s.params.format == "image_folder" for s in sources):
        entries = {s.name: manifest_entry(s, root) for s in sources}
        return lambda: entries
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["entries"] = {s.name: manifest_entry(s, root) for s in sources}
        except BaseException as err:  # raised again by `result`
            box["error"] = err

    thread = threading.Thread(target=run, name="dataops-ingest-sha256", daemon=True)
    thread.start()

    def result() -> dict[str, Any]:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["entries"]

    return result


def write_manifest(
    tmp: Path, params: IngestParams, inputs: dict[str, Any], joined: Joined
) -> IngestResult:
    """`tmp/manifest.json` for a snapshot written into `tmp` (every driver's last step)."""
    if joined.num_rows == 0:
        raise DatasetError(
            "ingest produced no rows: every source is empty or every row was skipped"
        )
    counts = joined.acct.report()
    skipped = counts["examples"]["skipped"]
    manifest = Manifest.model_validate(
        {
            "params": params.recorded(),
            "key": params.key if params.key is not None else KEYLESS_COLUMN,
            "num_rows": joined.num_rows,
            "columns": {c: joined.owners[c] for c in sorted(joined.owners)},
            "shapes": joined.shapes,
            "skipped": skipped,
            "counts": counts,
            "sources": inputs,
            "fingerprint": fingerprint(inputs),
        }
    )
    manifest.write(tmp / MANIFEST_FILE)
    return IngestResult(
        out=tmp,
        num_rows=joined.num_rows,
        skipped=skipped,
        inputs_fingerprint=manifest.fingerprint,
    )


def read_manifest(directory: str | Path) -> Manifest:
    """`<directory>/manifest.json`, validated."""
    return Manifest.read(Path(directory) / MANIFEST_FILE)
