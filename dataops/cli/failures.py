"""What a failure prints: the `error:` lines of an exception and the exit code it ends with."""

from __future__ import annotations

import errno
import os
from pathlib import Path

try:  # typer vendors its own copy of click since 0.2x; its exceptions are the ones raised
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as click_exc  # type: ignore[no-redef]

from dataops.errors import (
    ConfigError,
    DataopsError,
    Interrupted,
    clip,
    received,
    signal_name,
    stating_input,
)


def _name_params_file(message: str, params: Path | None) -> str:
    """Stage code says `params.yaml:`; say the file actually given with `--params`."""
    if params is None:
        return message
    lines = []
    for line in message.splitlines() or [message]:
        if line.startswith("params.yaml:"):
            line = f"{params}:{line[len('params.yaml:') :]}"
        elif line.startswith(("key '", "source '", "unknown key", "missing key")):
            line = f"{params}: {line}"
        lines.append(line)
    return "\n".join(lines)


def _os_error_line(err: OSError) -> str:
    where = f" {clip(os.fsdecode(err.filename))}" if err.filename is not None else ""
    text = str(err)
    if err.errno == errno.ENOSPC or "No space left on device" in text:
        return f"no space left on device{' writing' + where if where else ''}; free some space and re-run (outputs of earlier runs are unchanged, the partial output was removed)"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied:{where or ' ' + clip(text)}; check the owner and mode of the file or folder"
    if err.errno == errno.ENOENT:
        return f"not found:{where or ' ' + clip(text)}"
    if err.errno == errno.EROFS:
        return f"read-only file system:{where}; write the outputs elsewhere"
    if err.errno == errno.EDQUOT:
        return (
            f"disk quota exceeded{' writing' + where if where else ''}; free some space and re-run"
        )
    if err.errno == errno.EEXIST:
        return f"exists and is not a folder:{where}; choose another path"
    if err.errno == errno.EISDIR:
        return f"expected a file, found a folder:{where}"
    if err.errno == errno.ENOTDIR:
        return f"expected a folder, found a file:{where}"
    if err.errno is not None:
        return f"{os.strerror(err.errno).lower()}:{where or ' ' + clip(text)}"
    return f"I/O error: {clip(text)}"


def _interrupt_line(signum: int) -> str:
    from dataops.fsutil import committed

    # a file committed into a scratch folder that was moved or removed since is no output
    done = [p for p in committed() if ".incomplete-" not in str(p) and p.exists()]
    if done:
        already = ", ".join(clip(str(p)) for p in done)
        return f"interrupted ({signal_name(signum)}); already written before the signal: {already}; nothing else was written"
    return f"interrupted ({signal_name(signum)}); nothing was written"


def describe(
    err: BaseException, params: Path | None = None, out: str | Path | None = None
) -> tuple[list[str], int]:
    """The `error:` lines a failure prints and the exit code the process ends with (`params`:
    the params file given; `out`: the output being written, named when the OS error names none)."""
    if isinstance(err, KeyboardInterrupt):
        signum = err.signum if isinstance(err, Interrupted) else (received() or 2)
        return [_interrupt_line(signum)], 128 + signum
    if isinstance(err, ConfigError):
        return _name_params_file(str(err), params).splitlines() or ["bad configuration"], 2
    if isinstance(err, DataopsError):
        return str(err).splitlines() or [type(err).__name__], err.exit_code
    if isinstance(err, click_exc.ClickException):
        return [err.format_message()], err.exit_code
    if isinstance(err, MemoryError):
        return [
            "out of memory; lower the batch_rows / partition_bytes params, shrink the input or use a machine with more memory"
        ], 1
    if isinstance(err, OSError):
        if err.filename is None and out is not None and err.errno is not None:
            err = OSError(err.errno, err.strerror or str(err), str(out))
        return [_os_error_line(err)], 1
    text = str(err)
    if "No space left on device" in text:
        return [_os_error_line(OSError(errno.ENOSPC, text, None if out is None else str(out)))], 1
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover
        ValidationError = ()  # type: ignore[assignment,misc]
    if isinstance(err, ValidationError):
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        return [f"invalid {err.title}: {loc}: {stating_input(e['msg'], e.get('input'))}{more}"], 1
    if isinstance(err, UnicodeDecodeError):
        return [
            f"cannot decode text as {err.encoding}: {clip(text)}; convert the input to UTF-8"
        ], 1
    first = text.splitlines()[0] if text else ""
    return [
        f"unexpected {type(err).__name__}: {clip(first)}; re-run with --debug for the traceback and report it"
    ], 1
