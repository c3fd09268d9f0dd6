"""Where a source is: its path resolved, contained in the project (or `ingest.allow_outside`),
and of the right file type (a folder, a regular file, never a device or a pipe)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dataops.config import IngestParams
from dataops.errors import ConfigError
from dataops.stages.sources.base import KEYLESS_COLUMN, Source


def _allowed_roots(params: IngestParams, root: Path) -> tuple[Path, ...]:
    return (root.resolve(), *((root / a).resolve() for a in params.allow_outside))


def inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def resolve_source(params: IngestParams, root: Path, index: int) -> Source:
    """Check one source's path (contained, right file type) and return it resolved."""
    sp = params.sources[index]
    key = f"ingest.sources.{index}.path"
    allowed = _allowed_roots(params, root)
    given = root / sp.path
    if not os.path.lexists(given):
        raise ConfigError(f"params.yaml: key '{key}': {sp.path} does not exist")
    try:
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} cannot be resolved ({err})"
        ) from None
    if not inside(resolved, allowed):
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} resolves to {resolved}, outside the project "
            f"{allowed[0]}; list its folder in ingest.allow_outside to read it"
        )
    mode = os.stat(resolved).st_mode
    if sp.format == "image_folder":
        if not stat.S_ISDIR(mode):
            raise ConfigError(
                f"params.yaml: key '{key}': {sp.path} is not a folder (format image_folder)"
            )
    elif stat.S_ISDIR(mode):
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} is a folder, not a {sp.format} file"
        )
    elif not stat.S_ISREG(mode):
        raise ConfigError(
            f"params.yaml: key '{key}': {sp.path} is a {_file_kind(mode)}, not a regular file"
        )
    lexical = Path(os.path.normpath(root.resolve() / sp.path))
    rel = Path(os.path.relpath(lexical, root.resolve())).as_posix()
    prefix = params.sources[0].name if params.key is None else None
    return Source(
        params=sp,
        path=resolved,
        rel=rel,
        key=sp.key or params.key or KEYLESS_COLUMN,
        label=sp.path,
        index=index,
        keyless_prefix=prefix,
        allowed=allowed,
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
