"""Image folders (one folder per class) and the files they hold but do not read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from dataops.errors import ConfigError
from dataops.stages.sources.base import Batch, RowErrors, Source
from dataops.stages.sources.paths import inside
from dataops.stages.sources.rows import finish_batch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def ignored_files(src: Source) -> list[str]:
    """Files under an image folder that are not read as images, relative to it, sorted."""
    root = src.path
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        depth = len(Path(dirpath).relative_to(root).parts)
        for name in sorted(filenames):
            if depth != 1 or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return out


def image_files(src: Source) -> list[tuple[str, Path]]:
    root = src.path
    out = []
    for cls in sorted(d.name for d in root.iterdir() if d.is_dir()):
        for name in sorted(os.listdir(root / cls)):
            p = root / cls / name
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                if src.allowed and not inside(p.resolve(), src.allowed):
                    raise ConfigError(
                        f"params.yaml: key '{src.option('path')}': {src.label}/{cls}/{name} "
                        f"resolves to {p.resolve()}, outside the project; list its folder in ingest.allow_outside"
                    )
                out.append((cls, p))
    return out


def read_image_folder(src: Source, batch_rows: int, errors: RowErrors) -> Iterator[Batch]:
    """One batch per `batch_rows` images: the image bytes, the class (its folder), key = file stem."""
    files = image_files(src)
    for s in range(0, len(files), batch_rows):
        chunk = files[s : s + batch_rows]
        keys = [p.stem for _, p in chunk]
        rows = [p.relative_to(src.path).as_posix() for _, p in chunk]
        table = pa.table(
            {
                src.params.image_column: pa.array([p.read_bytes() for _, p in chunk], pa.binary()),
                src.params.label_column: pa.array([c for c, _ in chunk], pa.string()),
            }
        )
        seqs = np.arange(s, s + len(chunk), dtype=np.int64)
        yield finish_batch(table, src, rows, seqs, errors, key_values=pa.array(keys, pa.string()))
