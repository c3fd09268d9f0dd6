"""Path options and arguments of the commands, and object-store URLs given to them.

A `pathlib.Path` option turns `s3://bucket/snap` into the local path `s3:/bucket/snap`, so a
URL is never let through as a Path: an option the Beam engine reads or writes through Beam's
filesystems (`url_option`) is a `str` that `location` makes a local Path or keeps as the URL,
and `dataops.cli.stages.call_stage` refuses the URL on the in-process engine; every other path
(`local_option`, `local_argument`) refuses a URL while the command line is parsed, before
anything runs. Either refusal is one line naming the option, the URL and what to do, exit 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from dataops.errors import ConfigError

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")
"""A URL's scheme (RFC 3986) and `://`; two characters at least: `C://data` is a Windows drive."""


def is_url(value: object) -> bool:
    """True for an object-store URL as given on the command line (`s3://b/k`, `gs://b/k`)."""
    return isinstance(value, str) and _URL.match(value) is not None


def location(value: str | Path) -> str | Path:
    """A path option's value: an object-store URL unchanged, anything else a local Path."""
    return value if is_url(value) else Path(value)


def refuse_urls_off_beam(given: Iterable[tuple[str, str | Path]]) -> None:
    """ConfigError for the first (option, value) whose value is a URL: only the Beam engine
    reads and writes object stores."""
    for option, value in given:
        if is_url(value):
            raise ConfigError(f"{option} {value}: object-store paths need --engine beam")


def _name(param: Any) -> str:
    """How the user wrote the parameter: `--out`, or `DIRECTORY` for an argument."""
    first = str(param.opts[0]) if param.opts else str(param.name)
    return first if first.startswith("-") else first.upper()


def reads_local(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """The callback of a path (or list of paths) the command reads: a URL refused."""
    _refuse(ctx, param, value, "reads local paths only; copy it to this machine and give its path")
    return value


def writes_local(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """The callback of a path the command writes: a URL refused."""
    _refuse(
        ctx,
        param,
        value,
        "writes local paths only; give a local path, then copy the result to the store",
    )
    return value


def _refuse(ctx: typer.Context, param: typer.CallbackParam, value: Any, what: str) -> None:
    for v in value if isinstance(value, list | tuple) else [value]:
        if is_url(v):
            raise ConfigError(f"{_name(param)} {v}: dataops {ctx.info_name} {what}")


def _keep_url(value: str | Path) -> str | Path:
    """The parser of a local path: a URL kept as given, for the callback to name and refuse."""
    return location(value) if isinstance(value, str) else value


def local_option(*decls: str, writes: bool = False, **kw: Any) -> Any:
    """`typer.Option` for a local path (`Path`): a URL is refused up front, one line, exit 2.
    `writes`: the command writes there (the message says to copy the result afterwards)."""
    callback = writes_local if writes else reads_local
    kw.setdefault("metavar", "<path>")  # as a Path option shows (a parser would show <Path>)
    return typer.Option(*decls, parser=_keep_url, callback=callback, **kw)


def local_argument(**kw: Any) -> Any:
    """`typer.Argument` for a local path the command reads (`Path`): a URL is refused up front."""
    return typer.Argument(parser=_keep_url, callback=reads_local, **kw)


def url_option(*decls: str, **kw: Any) -> Any:
    """`typer.Option` for a path the Beam engine may find on an object store: a `str` (give it
    to `location`; `call_stage(urls=...)` refuses a URL on the in-process engine)."""
    return typer.Option(*decls, metavar="<path|url>", **kw)
