"""Atomic outputs, hashing and deterministic JSON."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataops.errors import ConfigError, DatasetError, clip, raise_if_interrupted, signals_deferred

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dumps_json(obj: Any) -> str:
    """Canonical JSON for tracked outputs: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {clip(key, 80)}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a NaN or infinite number)")


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def loads_json(raw: str | bytes, where: str) -> Any:
    """JSON one of our stages wrote, read strictly: UTF-8, no duplicate keys, no NaN/Infinity,
    bounded nesting and integer length. Anything else is one `DatasetError` naming `where`
    (the file) — never a RecursionError or a silently kept last duplicate."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return _STRICT_JSON.decode(text)
    except UnicodeDecodeError as err:
        raise DatasetError(
            f"{where}: not UTF-8 text (byte {err.start}): not a file dataops wrote"
        ) from None
    except RecursionError:
        raise DatasetError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError, a duplicate key, NaN, a too-long integer
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DatasetError(f"{where}: not valid JSON ({clip(first, 160)})") from None


def read_json_file(path: str | os.PathLike[str], missing: str) -> Any:
    """`loads_json` of a local file; a file that cannot be read is one `DatasetError` naming it
    (`missing`: the end of the message when it does not exist, e.g. `run ingest first`)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found — {missing}") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not a JSON file") from None
    except OSError as err:
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        raise DatasetError(f"{path}: cannot be read ({reason})") from None
    return loads_json(raw, str(path))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write canonical JSON atomically (temp file in the same directory, then rename).

    Refuses to commit once SIGINT/SIGTERM has arrived (see `dataops.errors.raise_if_interrupted`).
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"{path}: exists and is not a regular file (a folder or a device); choose another path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.incomplete-{secrets.token_hex(4)}")
    try:
        tmp.write_text(dumps_json(obj), encoding="utf-8")
        with signals_deferred():
            raise_if_interrupted()
            os.replace(tmp, path)
            _COMMITTED.append(path)
    finally:
        tmp.unlink(missing_ok=True)


# ---- atomic directories ----------------------------------------------------------------------
# Layout next to an output `<dir>` (every name matches the `*.incomplete-*` line of .gitignore):
#   .<dir>.incomplete-lock          flock'ed by the one process writing <dir>; never deleted
#   <dir>.incomplete-<pid>-<hex>    the new version being written
# Whoever holds the lock owns every `<dir>.incomplete-*` sibling, so on entry it removes those a
# killed run left (and `<dir>.old-*` of older versions of this code) without touching another
# process's live work: a second writer of the same <dir> is refused while the first one runs.

_COMMITTED: list[Path] = []
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def committed() -> list[Path]:
    """The outputs this process has committed so far (for the interrupt message)."""
    return list(_COMMITTED)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _lock(lock_path: Path, what: Path) -> int:
    """Take the exclusive lock guarding `what`; DatasetError if another process holds it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DatasetError(
            f"{what} is being written by another dataops process (pid {holder}, lock {lock_path}); wait for it to finish or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def stale_siblings(path: Path) -> list[Path]:
    """Leftovers of killed runs next to `path`: `<name>.incomplete-*` and `<name>.old-*`
    (not the lock file). Only safe to remove while holding `path`'s lock."""
    old = re.compile(re.escape(path.name) + r"\.old-[0-9a-f]{8}")
    found = list(path.parent.glob(f"{glob.escape(path.name)}.incomplete-*"))
    found += [
        p for p in path.parent.glob(f"{glob.escape(path.name)}.old-*") if old.fullmatch(p.name)
    ]
    return sorted(found)


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.incomplete-lock")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh sibling temp directory; on success it replaces `path`, on error it is removed.

    Guarantees: readers never see a half-written `path`; `path`, once it exists, is never missing
    (the new directory is swapped in with one atomic exchange on Linux; elsewhere the old one is
    kept until the new one is in place and put back if that fails); nothing of the old version or
    of the attempt survives a successful run; leftovers of killed runs (`<path>.incomplete-*`,
    `<path>.old-*`) are removed when the next run of the same output starts. One process at a time
    writes `path` (an flock on `.<name>.incomplete-lock`); a second is refused with a DatasetError.
    A SIGINT/SIGTERM received at any point, even one a library swallowed, aborts the commit.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; remove it or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = _lock(_lock_path(path), path)
    except OSError as err:  # name the output, not the lock file
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with signals_deferred():
            _recover(path)
            for p in stale_siblings(path):
                _remove(p)
        tmp = path.with_name(f"{path.name}.incomplete-{os.getpid()}-{secrets.token_hex(4)}")
        tmp.mkdir()
        try:
            yield tmp
            with signals_deferred():
                raise_if_interrupted()
                _swap_in(tmp, path)
                _COMMITTED.append(path)
        except BaseException:
            with signals_deferred():
                _remove(tmp)
            raise
    finally:
        os.close(fd)  # releases the flock


def _swap_in(tmp: Path, path: Path) -> None:
    """Move the finished `tmp` to `path`; remove the previous `path`. `path` is never missing."""
    if not path.exists() and not path.is_symlink():
        os.rename(tmp, path)
        return
    if _exchange(tmp, path):
        _remove(tmp)  # now holds the previous version
        return
    old = path.with_name(f"{tmp.name}.old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    _remove(old)


def _recover(path: Path) -> None:
    """After a crash between the two renames of the fallback swap, put the old version back."""
    if path.exists() or path.is_symlink():
        return
    olds = sorted(path.parent.glob(f"{glob.escape(path.name)}.incomplete-*.old"))
    if len(olds) == 1:
        os.rename(olds[0], path)


# ---- scratch space ---------------------------------------------------------------------------
SCRATCH_ROOT_NAME = "dataops-scratch"


@contextlib.contextmanager
def process_scratch(base: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A scratch folder owned by this process, set as `tempfile.tempdir` while the block runs.

    It lives in `$TMPDIR/dataops-scratch/<pid>-<hex>` and holds an flock'ed `.lock`, so the next
    run can tell a killed process's folder (lock free) from a live one's (lock held) and removes
    only the former. Everything a stage puts under `tempfile` (ingest's partition files,
    TensorFlow's temp files) is therefore cleaned after a crash too.
    """
    root = Path(base if base is not None else tempfile.gettempdir()) / SCRATCH_ROOT_NAME
    root.mkdir(parents=True, exist_ok=True)
    with signals_deferred():
        clean_stale_scratch(root)
    mine = root / f"{os.getpid()}-{secrets.token_hex(4)}"
    mine.mkdir()
    fd = os.open(mine / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    before = tempfile.tempdir
    tempfile.tempdir = str(mine)
    try:
        yield mine
    finally:
        tempfile.tempdir = before
        with signals_deferred():
            shutil.rmtree(mine, ignore_errors=True)
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_scratch(root: Path) -> list[Path]:
    """Remove the scratch folders under `root` whose owner is gone (their `.lock` is free)."""
    removed = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        pid = d.name.split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue  # a live process's (or one still taking its lock)
        lock = d / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue  # being created right now, or not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        finally:
            os.close(fd)
    return removed


def fingerprint(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`."""
    return hashlib.sha256(dumps_json(obj).encode()).hexdigest()
