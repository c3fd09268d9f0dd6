"""The one way a command body runs: options of the run, failures reported, run facts recorded."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dataops.cli.failures import describe
from dataops.cli.paths import local_option
from dataops.errors import ValidationFailed, clip, mark_reported, raise_if_interrupted

ParamsOpt = Annotated[Path, local_option("--params", "-p", help="The params file.")]
RUNS_DIR = Path("reports") / "runs"
#: Most `error:` lines printed for one failure (a params file with many bad keys).
MAX_ERROR_LINES = 10
OPTS: dict[str, Any] = {"quiet": False, "verbose": False, "debug": False, "reported": False}


def quiet_tensorflow() -> None:
    """Import TensorFlow with stderr silenced: it prints start-up lines (oneDNN, absl) before
    its log level applies. Kept with -v or --debug, and a failed import still raises."""
    if OPTS["verbose"] or OPTS["debug"] or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_beam() -> None:
    """Keep Beam's own output off stderr (kept with -v or --debug): its import logs warnings on
    the root logger (which would install a stderr handler for every later Beam log), and when
    the run is interrupted its worker and gRPC threads die with tracebacks and ERROR logs. A
    failure in a worker still reaches the driver as an exception and is reported in one line."""
    if OPTS["verbose"] or OPTS["debug"]:
        return
    import logging
    import threading

    from dataops.errors import received

    root = logging.getLogger()
    if not root.handlers:  # a handler present: `logging.warning` no longer calls basicConfig
        root.addHandler(logging.NullHandler())
    logging.getLogger("apache_beam").propagate = False
    logging.getLogger("apache_beam").addHandler(logging.NullHandler())
    default = threading.excepthook

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if received() is not None:  # interrupted: threads torn down mid-call; one line follows
            return
        default(args)

    threading.excepthook = excepthook
    if not isinstance(sys.stderr, _MainThreadStderr):
        sys.stderr = _MainThreadStderr(sys.stderr)


class _MainThreadStderr:
    """stderr that keeps only what the main thread writes: Beam's worker threads print the
    traceback of every failed or torn-down bundle straight to `sys.stderr` (a worker failure
    reaches the driver as an exception, reported in one `error:` line)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        import threading

        if threading.current_thread() is threading.main_thread():
            return int(self._stream.write(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


EngineOpt = Annotated[
    str,
    typer.Option(
        envvar="DATAOPS_ENGINE",
        help="Where the stage runs: 'local' (this process) or 'beam'. The output bytes are the same.",
    ),
]
BeamOptionsOpt = Annotated[
    str | None,
    typer.Option(
        envvar="DATAOPS_BEAM_OPTIONS",
        help="Beam pipeline options for --engine beam, e.g. '--runner=DataflowRunner --project=p'.",
    ),
]


def log(event: str, **kv: Any) -> None:
    if OPTS["quiet"]:
        return
    import structlog

    structlog.get_logger("dataops").info(event, **kv)


def fail(err: BaseException, params: Path | None = None, out: str | Path | None = None) -> int:
    """Print the `error:` lines of `err` (and its traceback under --debug); return the exit code."""
    lines, code = describe(err, params, out)
    OPTS["reported"] = True
    if OPTS["debug"]:
        import traceback

        traceback.print_exception(err, file=sys.stderr)
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[: MAX_ERROR_LINES - 1], f"... and {len(lines) - MAX_ERROR_LINES + 1} more"]
    for line in lines:
        typer.echo(f"error: {clip(line.rstrip(), 2000)}", err=True)
    mark_reported()
    return code


def run(
    stage: str,
    fn: Callable[[], Any],
    params: Path | None = None,
    record: bool = True,
    out: str | Path | None = None,
) -> Any:
    """Run a command body: map every failure to `error:` lines and an exit code. Stages (`record`)
    run in a process scratch folder and leave volatile run facts in reports/runs/ (untracked);
    read-only commands write nothing."""
    from dataops.fsutil import process_scratch

    start = time.perf_counter()
    try:
        if record:
            with process_scratch():
                result = fn()
        else:
            result = fn()
        raise_if_interrupted()  # an interrupt some library swallowed still stops the run
    except ValidationFailed as err:
        for line in err.violations:
            typer.echo(f"violation: {clip(line, 2000)}", err=True)
        n = len(err.violations)
        where = f"; the report is {out}" if out is not None else ""
        typer.echo(f"error: {n} violation{'s' * (n != 1)} (listed above){where}", err=True)
        raise typer.Exit(err.exit_code) from None
    except typer.Exit:
        raise
    except BaseException as err:  # noqa: BLE001 - the one place every failure is reported
        if isinstance(err, SystemExit):
            raise
        raise typer.Exit(fail(err, params, out)) from None
    if record:
        facts = {
            "stage": stage,
            "seconds": round(time.perf_counter() - start, 3),
            "host": platform.node(),
            "pid": os.getpid(),
            "finished_at": time.time(),
        }
        if OPTS["verbose"]:
            typer.echo(f"{stage}: {facts['seconds']} s (pid {facts['pid']})", err=True)
        try:
            RUNS_DIR.mkdir(parents=True, exist_ok=True)
            (RUNS_DIR / f"{stage}.json").write_text(json.dumps(facts) + "\n")
        except OSError:
            pass
    return result
