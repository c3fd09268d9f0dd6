"""The `dataops` command line: one thin command per stage, plus tools for dataset directories.

Exit codes: 0 success; 1 a data, integrity, validation or I/O failure; 2 a usage or config error;
130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM. Every failure ends in `error: ...` lines on
stderr naming the file, key or row and what to do; no traceback unless `--debug` or
`DATAOPS_DEBUG=1`. Heavy libraries (TensorFlow, pyarrow) are imported only by the commands
that need them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Annotated, Any

try:
    import typer
except ModuleNotFoundError as err:  # the library install: `dataops.load` only
    print(
        f"dataops: the command line needs the pipeline extra: pip install 'dataops[pipeline]' ({err})",
        file=sys.stderr,
    )
    sys.exit(2)


try:  # typer vendors its own copy of click since 0.2x; its exceptions are the ones raised
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as click_exc  # type: ignore[no-redef]


from dataops.cli import datasets, project, stages
from dataops.cli.run import OPTS, fail
from dataops.errors import Interrupted, clip, install_signal_handlers, received

app = typer.Typer(
    help="Versioned, reproducible TensorFlow datasets: ingest → preprocess → serialize → validate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dataops")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without install
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"dataops {_version()}")
        raise typer.Exit(0)


@app.callback()
def _global(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only errors (no summary lines).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print run facts (time, pid).")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Print the traceback of a failure (also: DATAOPS_DEBUG=1)."),
    ] = False,
) -> None:
    """Versioned, reproducible TensorFlow datasets: ingest → preprocess → serialize → validate."""
    if quiet and verbose:
        raise typer.BadParameter("use either --quiet or --verbose", param_hint="'-q/-v'")
    OPTS["quiet"], OPTS["verbose"] = quiet, verbose
    OPTS["debug"] = OPTS["debug"] or debug
    if not (verbose or OPTS["debug"]):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The commands, in the order `dataops --help` lists them.
app.command()(stages.sample)
app.command()(stages.ingest)
app.command()(stages.preprocess)
app.command()(stages.serialize)
app.command()(stages.validate)
app.command()(datasets.verify)
app.command()(datasets.info)
app.command()(datasets.schema)
app.command()(project.init)
app.command("dvc-yaml")(project.dvc_yaml)
app.command()(project.versions)
app.command()(datasets.head)
app.command()(datasets.show)
app.command()(datasets.export)
app.command("export-preprocessor")(datasets.export_preprocessor)


def main(argv: Sequence[str] | None = None) -> None:
    """The `dataops` entry point: SIGINT/SIGTERM handled, every failure one `error:` line."""
    args = list(sys.argv[1:] if argv is None else argv)
    OPTS.update(quiet=False, verbose=False, debug=False, reported=False)
    if "--debug" in args:  # accepted anywhere, e.g. `dataops ingest --debug`
        args = [a for a in args if a != "--debug"]
        OPTS["debug"] = True
    if os.environ.get("DATAOPS_DEBUG", "") not in ("", "0"):
        OPTS["debug"] = True
    install_signal_handlers()
    code: Any
    try:
        code = app(args=args, prog_name="dataops", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as err:
        typer.echo(err.ctx.get_help() if err.ctx else str(err))
        code = 2
    except click_exc.ClickException as err:
        hint = ""
        if isinstance(err, click_exc.UsageError) and err.ctx is not None:
            hint = f" (see '{err.ctx.command_path} -h')"
        typer.echo(f"error: {clip(err.format_message(), 2000)}{hint}", err=True)
        code = err.exit_code
    except typer.Abort:
        code = fail(Interrupted(received() or 2))
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - outside a command body (parsing, imports)
        code = fail(err)
    if received() is not None and not OPTS["reported"]:
        # interrupted outside a command body; typer turns that into a silent Exit(130)
        code = fail(Interrupted(received() or 2))
    # Past this point the outcome is decided: a signal arriving while Python shuts down (which
    # restores the default handlers) would otherwise kill the process with -15 after a success.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
