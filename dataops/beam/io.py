"""Files on any filesystem Beam knows (local paths, `s3://`, `gs://`), and row ranges of Parquet.

Outputs are written on the worker's local disk first (a private temporary directory) and then
moved (local) or uploaded (object store: one PUT or multipart upload per file, which readers
see whole or not at all) to their final names.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataops.errors import ConfigError, DatasetError, clip
from dataops.fsutil import atomic_dir
from dataops.stages.snapshot_files import iter_file_rows


def use_options(args: list[str], *paths: Any) -> None:
    """The driver reads and writes through Beam's filesystems too: give them the pipeline
    options (an object store's endpoint and credentials, e.g. `--s3_endpoint_url`), and check
    at once (`dataops.beam.reach`) that the stores of the work dir (`--temp_location`) and of
    the object-store URLs among `paths` (the run's inputs and outputs) answer: one line in
    seconds, before any work, instead of Beam's minutes of retries. Every other URL is checked
    when this process first touches it."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from dataops.beam import reach

    FileSystems.set_options(PipelineOptions(args))
    reach.check([_temp_location(args)], args, "--temp_location ")
    reach.check(paths, args)


def _temp_location(args: list[str]) -> str | None:
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    return PipelineOptions(args).view_as(GoogleCloudOptions).temp_location  # type: ignore[no-any-return]


def _reach(path: Any) -> None:
    """Before this process first touches an object store: that it answers (`reach.check`),
    asked with the options Beam's filesystems use now (`use_options`'s, or those a pipeline
    and a Beam worker set); none set yet: Beam's defaults."""
    if is_url(path):
        from apache_beam.io.filesystems import FileSystems
        from apache_beam.options.pipeline_options import PipelineOptions

        from dataops.beam import reach

        current = getattr(FileSystems, "_pipeline_options", None)  # set by set_options
        reach.check([path], current if current is not None else PipelineOptions([]))


def is_url(path: Any) -> bool:
    """True for an object-store URL such as `s3://bucket/key` (Beam's filesystems read it)."""
    return "://" in str(path)


def join(base: Any, *parts: str) -> str:
    if is_url(base):
        from apache_beam.io.filesystems import FileSystems

        return str(FileSystems.join(str(base), *parts))
    return str(Path(base, *parts))


def _raw() -> str:
    from apache_beam.io.filesystems import CompressionTypes

    return str(CompressionTypes.UNCOMPRESSED)


def exists(path: Any) -> bool:
    if is_url(path):
        _reach(path)
        from apache_beam.io.filesystems import FileSystems

        return bool(FileSystems.exists(str(path)))
    return Path(path).exists()


def read_artifact(path: Any) -> bytes:
    """The bytes of one of our JSON files, local or on an object store; one `DatasetError`
    naming it when it is missing or cannot be read (parse them with `Artifact.loads`)."""
    if not is_url(path):
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise DatasetError(f"{path}: not found — run the stage that writes it first") from None
        except OSError as err:
            raise DatasetError(f"{path}: cannot be read ({err.strerror or err})") from None
    _reach(path)
    from apache_beam.io.filesystems import FileSystems

    try:
        if not FileSystems.exists(str(path)):
            raise DatasetError(f"{path}: not found — run the stage that writes it first")
        return read_bytes(path)
    except DatasetError:
        raise
    except Exception as err:  # Beam's filesystems wrap every store's errors in their own types
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise DatasetError(f"{path}: cannot be read ({clip(first, 160)})") from None


def put_files(scratch: Path, dest: Any) -> None:
    """Move every file under the local directory `scratch` to the same relative path under
    `dest` (a local directory: a rename; a URL: an upload), in name order."""
    _reach(dest)
    for src in sorted(p for p in scratch.rglob("*") if p.is_file()):
        rel = src.relative_to(scratch).as_posix()
        if is_url(dest):
            from apache_beam.io.filesystems import FileSystems

            with (
                open(src, "rb") as f,
                FileSystems.create(join(dest, rel), compression_type=_raw()) as g,
            ):
                shutil.copyfileobj(f, g, 8 << 20)
            src.unlink()
        else:
            target = Path(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, target)  # a rename on one filesystem, else a copy


def move_tree(src: Any, dest: Any) -> None:
    """Move every file under the directory `src` to the same relative path under `dest`,
    in name order; either may be local or on an object store (a rename where one is possible,
    else a copy and a delete)."""
    _reach(dest)
    if not is_url(src):
        put_files(Path(src), dest)
        return
    from apache_beam.io.filesystems import FileSystems

    _reach(src)
    prefix = str(src).rstrip("/") + "/"
    found = sorted(m.path for r in FileSystems.match([join(src, "**")]) for m in r.metadata_list)
    for path in found:
        target = join(dest, path[len(prefix) :])
        if is_url(dest):
            FileSystems.rename([path], [target])
            continue
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with (
            FileSystems.open(path, compression_type=_raw()) as f,
            open(f"{target}.incomplete", "wb") as g,
        ):
            shutil.copyfileobj(f, g, 8 << 20)
        os.replace(f"{target}.incomplete", target)
        FileSystems.delete([path])


def write_bytes(path: Any, data: bytes) -> None:
    """One whole file, local (temporary name, then rename) or on an object store (one upload)."""
    if is_url(path):
        _reach(path)
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.create(str(path), compression_type=_raw()) as f:
            f.write(data)
        return
    tmp = Path(f"{path}.incomplete")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_bytes(path: Any) -> bytes:
    if is_url(path):
        _reach(path)
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(str(path), compression_type=_raw()) as f:
            return bytes(f.read())
    return Path(path).read_bytes()


@contextmanager
def output_dir(out: Any) -> Iterator[Any]:
    """Where a stage's files go: a local temporary directory committed at once (`atomic_dir`),
    or an object-store prefix itself, emptied first (a prefix cannot be renamed; the stage
    writes its manifest file — `metadata.json`, `state.json` — last)."""
    if is_url(out):
        scheme, _, rest = str(out).partition("://")
        if not rest.strip("/").partition("/")[2]:
            raise ConfigError(
                f"{out}: an output on an object store must be a folder inside a bucket (its objects are replaced)"
            )
        _reach(out)
        remove_tree(str(out))
        yield str(out)
        return
    with atomic_dir(out) as tmp:
        yield tmp


@contextmanager
def work_dir(args: list[str]) -> Iterator[str]:
    """Scratch space that the driver and every worker reach: under Beam's `--temp_location`
    when given (needed on a cluster), else a local temporary directory (one machine). An
    object-store location is checked first (`reach.check`: one line in seconds)."""
    from dataops.beam import reach

    location = _temp_location(args)
    reach.check([location], args, "--temp_location ")
    if not location:
        with tempfile.TemporaryDirectory(prefix="dataops-beam-") as tmp:
            yield tmp
        return
    work = join(location, f"dataops-{secrets.token_hex(8)}")
    try:
        yield work
    finally:
        if is_url(work):
            remove_tree(work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def remove(path: Any) -> None:
    """Delete one file, local or on an object store."""
    if is_url(path):
        _reach(path)
        from apache_beam.io.filesystems import FileSystems

        FileSystems.delete([str(path)])
    else:
        Path(path).unlink()


def remove_tree(url: str) -> int:
    """Delete every object under the prefix `url` (a directory on an object store); their count."""
    from apache_beam.io.filesystems import FileSystems

    _reach(url)
    found = [m.path for r in FileSystems.match([join(url, "**")]) for m in r.metadata_list]
    if found:
        FileSystems.delete(found)
    return len(found)


def open_parquet(path: Any) -> pq.ParquetFile:
    """A Parquet file on any filesystem Beam knows (a local path, `s3://`, `gs://`)."""
    path = str(path)
    if is_url(path):
        _reach(path)
        from apache_beam.io.filesystems import FileSystems

        return pq.ParquetFile(FileSystems.open(path, compression_type=_raw()), pre_buffer=False)
    # pre_buffer=False: Arrow would otherwise keep every row group read until the file closes.
    return pq.ParquetFile(path, pre_buffer=False)


def iter_rows(
    path: Any,
    start: int,
    stop: int,
    batch_rows: int,
    columns: list[str] | None = None,
    pf: pq.ParquetFile | None = None,
) -> Iterator[pa.RecordBatch]:
    """Rows [start, stop) of a Parquet file, in order, at most `batch_rows` per batch.

    Only the row groups that hold the range are read, with one `read_row_groups`-style scan
    (`pf`: the file already open, so a task reads its footer once).
    """
    yield from iter_file_rows(pf or open_parquet(path), start, stop, batch_rows, columns)
