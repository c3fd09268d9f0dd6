"""Objects into a DVC remote's content-addressed layout (`files/md5/<2>/<30>`): the md5 of a
file, where its object lives, and an upload that is whole or not at all."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataops.beam.io import exists, is_url, join, put_files
from dataops.errors import DatasetError

FileEntry = tuple[str, str, int]
"""One file of the output: (path relative to the output folder, md5 of its bytes, size)."""

Put = Callable[[Path], list[FileEntry]]
"""How a worker hands over the files of its local scratch directory: moved into the output
folder (`mover`: no entries) or uploaded into a DVC remote (`uploader`: their entries)."""


def object_path(objects: str, md5: str) -> str:
    """Where DVC keeps the object named `md5` (a file's md5, or `<md5>.dir`)."""
    return join(objects, md5[:2], md5[2:])


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def put_object(src: Path, dest: str) -> None:
    """Copy the local file `src` to the remote object `dest`, whole or not at all, unless an
    object of the same size is there already (same name, so the same bytes).

    An object store's writer commits whatever it was given when it is closed — an upload
    interrupted by a signal or a failure would leave a truncated object under the content's
    name, which every later run would take as uploaded. So the bytes go to a temporary name
    first and are renamed (a server-side copy) only once whole; the temporary object is deleted
    on failure. An object of the wrong size under the final name (an earlier, interrupted
    upload) is replaced, so a re-run converges."""
    size = src.stat().st_size
    if _object_size(dest) == size:
        return
    if is_url(dest):
        from apache_beam.io.filesystems import CompressionTypes, FileSystems

        tmp = f"{dest}.incomplete-{secrets.token_hex(4)}"
        try:
            with (
                open(src, "rb") as f,
                FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as g,
            ):
                shutil.copyfileobj(f, g, 8 << 20)
            if _object_size(tmp) != size:
                raise DatasetError(
                    f"{dest}: the upload of {src.name} ({size} bytes) arrived incomplete; run the same command again"
                )
            if exists(dest):  # a truncated object of an earlier run: rename does not overwrite
                FileSystems.delete([dest])
            FileSystems.rename([tmp], [dest])
        finally:
            _delete_quietly(tmp)
        return
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.with_name(f"{target.name}.incomplete-{secrets.token_hex(4)}")
    try:
        shutil.copyfile(src, tmp_path)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _object_size(path: str) -> int | None:
    """The size of the object or file at `path`; None when there is none."""
    if not is_url(path):
        p = Path(path)
        return p.stat().st_size if p.is_file() else None
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        return None
    return int(FileSystems.match([path])[0].metadata_list[0].size_in_bytes)


def _delete_quietly(path: str) -> None:
    """Remove a temporary object if it is there (cleanup after a failure: never raises)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        if FileSystems.exists(path):
            FileSystems.delete([path])
    except Exception:  # noqa: BLE001, S110 — the failure being reported matters more
        pass


def upload_files(scratch: Path, objects: str) -> list[FileEntry]:
    """Upload every file under the local directory `scratch` into the remote's object store
    `objects` (`RemoteTarget.objects`), deleting it locally once uploaded; their entries."""
    entries = []
    for src in sorted(p for p in scratch.rglob("*") if p.is_file()):
        md5 = md5_file(src)
        put_object(src, object_path(objects, md5))
        entries.append((src.relative_to(scratch).as_posix(), md5, src.stat().st_size))
        src.unlink()
    return entries


def uploader(objects: str) -> Put:
    """`upload_files` into the remote's object store `objects` (picklable: a Beam task's)."""
    return functools.partial(upload_files, objects=objects)


def mover(dest: Any) -> Put:
    """`put_files` into the folder `dest`, local or a URL (picklable: a Beam task's)."""
    return functools.partial(_move, dest=dest)


def _move(scratch: Path, dest: Any) -> list[FileEntry]:
    put_files(scratch, dest)
    return []
