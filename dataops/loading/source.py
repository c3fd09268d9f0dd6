"""Where a dataset comes from: a directory as is, or a git revision of a DVC repository,
materialized once into a local cache keyed by its metadata.json."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dataops.artifacts import ExportInfo
from dataops.errors import ConfigError, DatasetError
from dataops.fingerprint import cache_key
from dataops.fsutil import loads_json, sha256_file
from dataops.loading.options import DEFAULT_DVC_PATH
from dataops.loading.splits import parse_split
from dataops.metadata import (
    METADATA_FILE,
    DatasetMetadata,
    ShardInfo,
    parse_metadata,
    read_metadata,
)
from dataops.naming import EXPORT_FILE


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
    split: str | None = None,
) -> Source:
    """A dataset directory as is, or — with `repo` — the git revision `source` of that DVC repository, materialized.

    With `repo` and a `split` expression, only the splits it names are fetched.
    """
    if repo is not None:
        directory = materialize_revision(
            str(repo), str(source), path=path, cache_dir=cache_dir, splits=split
        )
        origin = f"{_strip_credentials(str(repo))}@{source}:{path}"
    else:
        directory = Path(source)
        origin = str(directory)
        if not directory.is_dir():
            raise DatasetError(
                f"{directory}: not a dataset directory (to load a git revision of a DVC repository, pass repo=...)"
            )
    export = directory / EXPORT_FILE
    if export.is_file():
        info = ExportInfo.read(export)
        if info.format != "snapshot":
            raise DatasetError(
                f"{directory}: an export in format {info.format!r}; dataops.load reads TFRecord datasets and snapshots"
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


FETCHED_DIR = ".dataops-fetched"  # one empty marker file per split whose files are all in the cache


def _strip_credentials(url: str) -> str:
    """`s3://key:secret@host/x` → `s3://host/x` (no user, no password)."""
    parts = urlsplit(url)
    if parts.netloc and "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        return urlunsplit(parts)
    return url


def _remote_of(repo: str, rev: str) -> str:
    """The URL of the default DVC remote of `repo` at `rev` (credentials stripped), or a phrase saying there is none."""
    try:
        from dvc.repo import Repo

        # a local repository: its workspace config resolves a relative remote path (as DVC does)
        local = Path(repo).is_dir()
        with Repo(repo, rev=None if local else rev, uninitialized=True) as r:
            config = r.config
            name = config["core"].get("remote")
            if not name:
                return "no default DVC remote"
            url = str(config["remote"][name]["url"])
            return f"DVC remote {name!r} ({_strip_credentials(url)})"
    except Exception:  # the revision itself may not exist: then no remote can be named
        return "its DVC remote"


def _unreachable(repo: str, rev: str, what: str, err: BaseException) -> DatasetError:
    """One line for a revision that does not exist, or data the DVC remote cannot give."""
    bad = _bad_revision(repo, rev, err)
    if bad:
        return DatasetError(f"cannot read revision {rev!r} of {_strip_credentials(repo)}: {bad}")
    root = err
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    reason = (str(root).strip().splitlines() or [type(root).__name__])[0][:300]
    reason = re.sub(r"//[^/@\s]+@", "//", reason)  # no credentials from a URL in the reason
    return DatasetError(
        f"{what} of revision {rev!r} of {_strip_credentials(repo)}: not in the local DVC cache, and "
        f"{_remote_of(repo, rev)} does not have it or cannot be reached ({reason}); "
        "check the remote, or run `dvc push` where that revision was made"
    )


def _listed(fs: Any, file: str) -> bool:
    """Whether the revision lists `file` (True when its listing itself cannot be fetched)."""
    try:
        return bool(fs.exists(file))
    except Exception:
        return True


def _bad_revision(repo: str, rev: str, err: BaseException) -> str:
    """Why `rev` of `repo` cannot be read from git ("" when it can, as far as one can tell)."""
    if "://" in repo or "@" in repo:  # a git URL: only DVC's own error can tell
        chain: BaseException | None = err
        while chain is not None:
            if type(chain).__name__ in ("RevError", "UnknownRevError", "CloneError"):
                return f"no such git revision, or the repository cannot be cloned ({chain})"
            chain = chain.__cause__ or chain.__context__
        return ""
    if not Path(repo).is_dir():
        return "no such directory (repo= is a git repository: a path or a URL)"
    try:
        from scmrepo.git import Git

        with Git(repo) as scm:
            scm.resolve_rev(rev)
    except Exception:
        return "no such git revision (a tag, branch or commit)"
    return ""


def materialize_revision(
    repo: str,
    rev: str,
    *,
    path: str = DEFAULT_DVC_PATH,
    cache_dir: str | os.PathLike[str] | None = None,
    splits: str | Iterable[str] | None = None,
) -> Path:
    """Copy the dataset at `path` of git revision `rev` of DVC repository `repo` into the local cache; return its directory.

    Reads through `dvc.api.DVCFileSystem` (git objects + the DVC cache, fetching from the
    remote when the cache lacks a file): no checkout, the workspace is not touched. The
    cache directory is keyed by the sha256 of that revision's `metadata.json`, which pins
    every shard's sha256; each shard is checked against it once, when copied. Only the
    shards (and shard indexes) of `splits` (split names, or a split
    expression like `train[:10%]+test`; default: every split) are fetched; the
    directory records which splits it holds, and a later call for other splits fetches
    the rest.
    """
    from dvc.api import DVCFileSystem

    where = f"{_strip_credentials(repo)}@{rev}:{path}"
    fs = None
    try:
        fs = DVCFileSystem(repo, rev=rev)
        meta_bytes = fs.read_bytes(f"{path}/{METADATA_FILE}")
    except Exception as err:  # dvc/scmrepo raise many types for a bad repo, revision or remote
        missing = isinstance(err, FileNotFoundError) and fs is not None
        if missing and not _listed(fs, f"{path}/{METADATA_FILE}"):
            raise DatasetError(f"{where}/{METADATA_FILE}: not found in that revision") from None
        raise _unreachable(repo, rev, f"{path}/{METADATA_FILE}", err) from err
    meta_file = f"{where}/{METADATA_FILE}"
    meta = parse_metadata(loads_json(meta_bytes, meta_file), meta_file)
    key = cache_key(meta_bytes)
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = target / f"{meta.name}-{key}"
    if splits is None:
        wanted = [s.name for s in meta.splits]
    elif isinstance(splits, str):  # a split expression: its own errors (ConfigError) first
        wanted = list(dict.fromkeys(name for name, _, _ in parse_split(splits, meta)))
    else:
        wanted = list(dict.fromkeys(splits))
        for name in wanted:
            try:
                meta.split(name)
            except DatasetError as err:
                raise ConfigError(str(err)) from None
    if not (target / METADATA_FILE).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.incomplete-{secrets.token_hex(4)}")
        tmp.mkdir()
        try:
            (tmp / FETCHED_DIR).mkdir()
            (tmp / METADATA_FILE).write_bytes(meta_bytes)
            try:
                os.replace(tmp, target)
            except OSError:
                if not (
                    target / METADATA_FILE
                ).is_file():  # nor did a concurrent loader win the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    marks = target / FETCHED_DIR
    if not marks.is_dir():  # a cache written before per-split fetching: it holds every split
        return target
    for name in wanted:
        if (marks / name).is_file():
            continue
        tmp = target / f"{FETCHED_DIR}.incomplete-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            files = _dataset_files(meta.split(name).shards)
            for file, sha256 in files:
                dest = tmp / file
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fs.get_file(f"{path}/{file}", str(dest))
                except Exception as err:
                    raise _unreachable(repo, rev, f"{path}/{file}", err) from err
                digest = sha256_file(dest)
                if digest != sha256:
                    raise DatasetError(
                        f"{where}/{file}: sha256 {digest}, metadata.json says {sha256}"
                    )
            for file, _ in files:  # same bytes whoever wins a race: each rename is atomic
                (target / file).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / file, target / file)
            (marks / name).touch()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
