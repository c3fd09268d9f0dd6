"""Where a dataset comes from: a directory as is, or a git revision of a DVC repository,
materialized once into a local cache keyed by its metadata.json."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dataops.errors import DatasetError
from dataops.fsutil import sha256_file
from dataops.loading.options import DEFAULT_DVC_PATH
from dataops.metadata import (
    METADATA_FILE,
    DatasetMetadata,
    ShardInfo,
    parse_metadata,
    read_metadata,
)

EXPORT_FILE = "export.json"


def default_cache_dir() -> Path:
    """Where revisions of DVC repositories are materialized: `$DATAOPS_CACHE_DIR` or `~/.cache/dataops/datasets`."""
    env = os.environ.get("DATAOPS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dataops" / "datasets"


@dataclass(frozen=True)
class Source:
    """A readable dataset: its directory, metadata, and how it is stored."""

    directory: Path
    metadata: DatasetMetadata
    kind: Literal["tfrecord", "snapshot"]
    origin: str


def resolve_source(
    source: str | os.PathLike[str],
    *,
    repo: str | os.PathLike[str] | None = None,
    path: str = DEFAULT_DVC_PATH,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Source:
    """A dataset directory as is, or — with `repo` — the git revision `source` of that DVC repository, materialized."""
    if repo is not None:
        directory = materialize_revision(str(repo), str(source), path=path, cache_dir=cache_dir)
        origin = f"{repo}@{source}:{path}"
    else:
        directory = Path(source)
        origin = str(directory)
        if not directory.is_dir():
            raise DatasetError(
                f"{directory}: not a dataset directory (to load a git revision of a DVC repository, pass repo=...)"
            )
    export = directory / EXPORT_FILE
    if export.is_file():
        info = json.loads(export.read_text(encoding="utf-8"))
        if info.get("format") != "snapshot":
            raise DatasetError(
                f"{directory}: an export in format {info.get('format')!r}; dataops.load reads TFRecord datasets and snapshots"
            )
        return Source(directory, read_metadata(directory), "snapshot", origin)
    return Source(directory, read_metadata(directory), "tfrecord", origin)


def _dataset_files(shards: list[ShardInfo]) -> list[tuple[str, str]]:
    """`(file, sha256)` of each shard and shard index."""
    out = []
    for shard in shards:
        out.append((shard.file, shard.sha256))
        if shard.index is not None:
            out.append((shard.index.file, shard.index.sha256))
    return out


def materialize_revision(
    repo: str,
    rev: str,
    *,
    path: str = DEFAULT_DVC_PATH,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Copy the dataset at `path` of git revision `rev` of DVC repository `repo` into the local cache; return its directory.

    Reads through `dvc.api.DVCFileSystem` (git objects + the DVC cache, fetching from the
    remote when the cache lacks a file): no checkout, the workspace is not touched. The
    cache directory is keyed by the sha256 of that revision's `metadata.json`, which pins
    every shard's sha256; each shard is checked against it once, when copied.
    """
    from dvc.api import DVCFileSystem

    where = f"{repo}@{rev}:{path}"
    try:
        fs = DVCFileSystem(repo, rev=rev)
        meta_bytes = fs.read_bytes(f"{path}/{METADATA_FILE}")
    except FileNotFoundError:
        raise DatasetError(f"{where}/{METADATA_FILE}: not found in that revision") from None
    except Exception as err:  # dvc/scmrepo raise many types for a bad repo or revision
        raise DatasetError(
            f"cannot read revision {rev!r} of {repo}: {type(err).__name__}: {err}"
        ) from None
    try:
        meta = parse_metadata(json.loads(meta_bytes), f"{where}/{METADATA_FILE}")
    except json.JSONDecodeError as err:
        raise DatasetError(f"{where}/{METADATA_FILE}: not valid JSON: {err}") from None
    key = hashlib.sha256(meta_bytes).hexdigest()[:16]
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = target / f"{meta.name}-{key}"
    if (target / METADATA_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.incomplete-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        for split in meta.splits:
            for file, sha256 in _dataset_files(split.shards):
                dest = tmp / file
                try:
                    fs.get_file(f"{path}/{file}", str(dest))
                except Exception as err:
                    raise DatasetError(
                        f"{where}/{file}: cannot fetch (is it pushed to the DVC remote?): {type(err).__name__}: {err}"
                    ) from None
                digest = sha256_file(dest)
                if digest != sha256:
                    raise DatasetError(
                        f"{where}/{file}: sha256 {digest}, metadata.json says {sha256}"
                    )
        (tmp / METADATA_FILE).write_bytes(meta_bytes)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (
                target / METADATA_FILE
            ).is_file():  # a concurrent loader did not win the race either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
