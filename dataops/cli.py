"""The `dataops` command line: one thin command per stage, plus tools for dataset directories.

Exit codes: 0 success; 1 a data, integrity, validation or I/O failure; 2 a usage or config error;
130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM. Every failure ends in `error: ...` lines on
stderr naming the file, key or row and what to do; no traceback unless `--debug` or
`DATAOPS_DEBUG=1`. Heavy libraries (TensorFlow, pyarrow) are imported only by the commands
that need them.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

try:
    import typer
except ModuleNotFoundError as err:  # the library install: `dataops.load` only
    print(
        f"dataops: the command line needs the pipeline extra: pip install 'dataops[pipeline]' ({err})",
        file=sys.stderr,
    )
    sys.exit(2)

from dataops import naming

try:  # typer vendors its own copy of click since 0.2x; its exceptions are the ones raised
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as click_exc  # type: ignore[no-redef]

from dataops.errors import (
    ConfigError,
    DataopsError,
    Interrupted,
    ValidationFailed,
    clip,
    install_signal_handlers,
    raise_if_interrupted,
    received,
    signal_name,
)
from dataops.progress import terminal_progress

app = typer.Typer(
    help="Versioned, reproducible TensorFlow datasets: ingest → preprocess → serialize → validate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="The params file.")]
RUNS_DIR = Path("reports") / "runs"
#: Most `error:` lines printed for one failure (a params file with many bad keys).
MAX_ERROR_LINES = 10
_OPTS: dict[str, Any] = {"quiet": False, "verbose": False, "debug": False, "reported": False}


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
    _OPTS["quiet"], _OPTS["verbose"] = quiet, verbose
    _OPTS["debug"] = _OPTS["debug"] or debug
    if not (verbose or _OPTS["debug"]):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _quiet_tensorflow() -> None:
    """Import TensorFlow with stderr silenced: it prints start-up lines (oneDNN, absl) before
    its log level applies. Kept with -v or --debug, and a failed import still raises."""
    if _OPTS["verbose"] or _OPTS["debug"] or "tensorflow" in sys.modules:
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


def _log(event: str, **kv: Any) -> None:
    if _OPTS["quiet"]:
        return
    import structlog

    structlog.get_logger("dataops").info(event, **kv)


# ---- one error path ----------------------------------------------------------------------------


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

    done = [p for p in committed() if ".incomplete-" not in str(p)]
    if done:
        already = ", ".join(clip(str(p)) for p in done)
        return f"interrupted ({signal_name(signum)}); already written before the signal: {already}; nothing else was written"
    return f"interrupted ({signal_name(signum)}); nothing was written"


def describe(
    err: BaseException, params: Path | None = None, out: Path | None = None
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
        return [
            f"invalid {err.title}: {loc}: {e['msg']} (got {clip(repr(e.get('input')))}){more}"
        ], 1
    if isinstance(err, UnicodeDecodeError):
        return [
            f"cannot decode text as {err.encoding}: {clip(text)}; convert the input to UTF-8"
        ], 1
    first = text.splitlines()[0] if text else ""
    return [
        f"unexpected {type(err).__name__}: {clip(first)}; re-run with --debug for the traceback and report it"
    ], 1


def _fail(err: BaseException, params: Path | None = None, out: Path | None = None) -> int:
    """Print the `error:` lines of `err` (and its traceback under --debug); return the exit code."""
    lines, code = describe(err, params, out)
    _OPTS["reported"] = True
    if _OPTS["debug"]:
        import traceback

        traceback.print_exception(err, file=sys.stderr)
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[: MAX_ERROR_LINES - 1], f"... and {len(lines) - MAX_ERROR_LINES + 1} more"]
    for line in lines:
        typer.echo(f"error: {clip(line.rstrip(), 2000)}", err=True)
    return code


def _run(
    stage: str,
    fn: Callable[[], Any],
    params: Path | None = None,
    record: bool = True,
    out: Path | None = None,
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
        raise typer.Exit(_fail(err, params, out)) from None
    if record:
        facts = {
            "stage": stage,
            "seconds": round(time.perf_counter() - start, 3),
            "host": platform.node(),
            "pid": os.getpid(),
            "finished_at": time.time(),
        }
        if _OPTS["verbose"]:
            typer.echo(f"{stage}: {facts['seconds']} s (pid {facts['pid']})", err=True)
        try:
            RUNS_DIR.mkdir(parents=True, exist_ok=True)
            (RUNS_DIR / f"{stage}.json").write_text(json.dumps(facts) + "\n")
        except OSError:
            pass
    return result


def _params(path: Path):
    from dataops.config import load_params

    return load_params(path)


@app.command()
def sample(
    params: Annotated[
        Path | None,
        typer.Option(
            "--params",
            "-p",
            help="The params file (default: params.yaml if there is one, else the defaults).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path(naming.SAMPLE_DIR),
    num_examples: Annotated[
        int | None, typer.Option(help="Rows (default: sample.num_examples).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: sample.seed).")] = None,
) -> None:
    """Write the bundled sample source: PNG folders, a CSV and a JSON Lines file."""
    from dataops.config import SampleParams
    from dataops.sample import generate_sample

    def go():
        given = params if params is not None else Path("params.yaml")
        # a file named with --params must exist; only the implicit params.yaml may be absent
        use = params is not None or given.exists()
        base = _params(given).sample if use else SampleParams()
        p = base.model_copy(
            update={
                k: v
                for k, v in {"num_examples": num_examples, "seed": seed}.items()
                if v is not None
            }
        )
        from pydantic import ValidationError

        try:
            checked = SampleParams.model_validate(p.model_dump())
        except ValidationError as err:
            e = err.errors()[0]
            raise ConfigError(
                f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']} (got {e.get('input')!r})"
            ) from None
        with terminal_progress() as progress:
            return generate_sample(out, checked, progress)

    r = _run("sample", go, params, out=out)
    _log("sample.done", out=str(r.out), examples=r.num_examples, classes=len(r.classes))


@app.command()
def ingest(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Snapshot folder.")] = Path(naming.SNAPSHOT_DIR),
) -> None:
    """Read and join the sources of `ingest` into a Parquet snapshot with a manifest."""
    from dataops.ingest import run_ingest

    def go():
        p = _params(params)
        with terminal_progress() as progress:
            return run_ingest(p.ingest, params.resolve().parent, out, p.dataset.on_error, progress)

    r = _run("ingest", go, params, out=out)
    _log("ingest.done", out=str(r.out), rows=r.num_rows, skipped=r.skipped)


@app.command()
def preprocess(
    params: ParamsOpt = Path("params.yaml"),
    snapshot: Annotated[Path, typer.Option(help="Snapshot folder (from ingest).")] = Path(
        naming.SNAPSHOT_DIR
    ),
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path(naming.PREPROCESSED_DIR),
    engine: EngineOpt = "local",
    beam_options: BeamOptionsOpt = None,
) -> None:
    """Split, fit on train, and transform into one Parquet file per split."""
    from dataops.beam import use_beam
    from dataops.preprocess import run_preprocess

    def go():
        beam = use_beam(engine)
        p = _params(params)
        if beam:
            from dataops.beam.preprocess import run_preprocess_beam

            return run_preprocess_beam(
                p.preprocess, snapshot, out, p.dataset.on_error, beam_options
            )
        with terminal_progress() as progress:
            return run_preprocess(p.preprocess, snapshot, out, p.dataset.on_error, progress)

    r = _run("preprocess", go, params, out=out)
    _log(
        "preprocess.done",
        out=str(r.out),
        examples=r.num_examples,
        skipped=r.skipped,
        engine=engine,
    )


@app.command()
def serialize(
    params: ParamsOpt = Path("params.yaml"),
    preprocessed: Annotated[Path, typer.Option(help="Folder from preprocess.")] = Path(
        naming.PREPROCESSED_DIR
    ),
    out: Annotated[Path, typer.Option(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    engine: EngineOpt = "local",
    beam_options: BeamOptionsOpt = None,
) -> None:
    """Write TFRecord shards of tf.train.Example and metadata.json."""
    from dataops.beam import use_beam
    from dataops.serialize import run_serialize

    def go():
        beam = use_beam(engine)
        p = _params(params)
        if beam:
            from dataops.beam.serialize import run_serialize_beam

            return run_serialize_beam(p.serialize, p.dataset, preprocessed, out, beam_options)
        with terminal_progress() as progress:
            return run_serialize(p.serialize, p.dataset, preprocessed, out, progress)

    r = _run("serialize", go, params, out=out)
    _log(
        "serialize.done",
        out=str(r.out),
        engine=engine,
        examples=r.metadata.num_examples,
        shards={s.name: len(s.shards) for s in r.metadata.splits},
    )


@app.command()
def validate(
    params: ParamsOpt = Path("params.yaml"),
    dataset: Annotated[Path, typer.Option(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    report: Annotated[Path, typer.Option(help="Report file (JSON).")] = Path(naming.REPORT_FILE),
) -> None:
    """Re-read every shard with TensorFlow and check the expectations; exit 1 on violations."""
    _quiet_tensorflow()
    from dataops.validate import run_validate

    def go():
        p = _params(params)
        with terminal_progress() as progress:
            r = run_validate(p.validate_, dataset, report, progress)
        if r.violations:
            raise ValidationFailed(r.violations)
        return r

    r = _run("validate", go, params, out=report)
    _log("validate.done", report=str(report), ok=r.ok)


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")] = Path(
        naming.DATASET_DIR
    ),
) -> None:
    """Check a dataset folder against its metadata.json: files, sizes, sha256, records, counts."""
    from dataops.verify import verify_dataset

    r = _run("verify", lambda: verify_dataset(directory), record=False)
    if r.problems:
        for line in r.problems:
            typer.echo(f"problem: {line}", err=True)
        raise typer.Exit(1)
    total = sum(r.metadata.num_examples.values())
    typer.echo(
        f"ok: {directory} — {total} examples in {sum(len(s.shards) for s in r.metadata.splits)} shards match metadata.json"
    )


@app.command()
def info(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")] = Path(
        naming.DATASET_DIR
    ),
    report: Annotated[Path | None, typer.Option(help="Validation report to summarize too.")] = None,
) -> None:
    """Print a human summary of a dataset: features, splits, shards, validation verdict."""
    from dataops.summary import render_info

    text = _run("info", lambda: render_info(directory, report), record=False)
    typer.echo(text)


@app.command()
def schema(
    name: Annotated[
        str,
        typer.Argument(help="Which file: metadata, manifest, state, validation or export."),
    ] = "metadata",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Fail when a committed schema differs from its model.")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write", help="Regenerate every committed schema from its model.")
    ] = False,
) -> None:
    """Print the JSON Schema of a stage's JSON file (metadata.json by default), from its model."""
    from dataops import artifacts
    from dataops.fsutil import dumps_json

    if check or write:
        if write:
            for path in artifacts.write_schemas():
                typer.echo(f"wrote {path}")
        stale = artifacts.stale_schemas()
        for n in stale:
            typer.echo(
                f"error: {artifacts.schema_path(n)} differs from its model; run `dataops schema --write`",
                err=True,
            )
        raise typer.Exit(1 if stale else 0)
    if name not in artifacts.ARTIFACTS:
        typer.echo(
            f"error: no schema {name!r}; choose one of {', '.join(artifacts.ARTIFACTS)}", err=True
        )
        raise typer.Exit(2)
    text = dumps_json(artifacts.json_schema(name))
    if out is None:
        typer.echo(text, nl=False)
    else:
        _run("schema", lambda: out.write_text(text, encoding="utf-8"), record=False, out=out)


@app.command()
def init(
    source: Annotated[
        list[str], typer.Option("--source", "-s", help="A source file or image folder (repeat).")
    ],
    key: Annotated[
        str | None, typer.Option(help="Key column (default: none, rows keyed by position).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column (categorical).")] = None,
    name: Annotated[str, typer.Option(help="Dataset name.")] = "dataset",
    force: Annotated[bool, typer.Option(help="Overwrite params.yaml and dvc.yaml.")] = False,
) -> None:
    """Write params.yaml and dvc.yaml for your own sources (features proposed from the data)."""
    from dataops.project import init_project

    r = _run(
        "init",
        lambda: init_project(Path(), source, key=key, label=label, name=name, force=force),
        record=False,
    )
    kinds = ", ".join(f"{f['name']} ({f['kind']})" for f in r.features)
    typer.echo(f"wrote {r.params} and {r.dvc_yaml}: features {kinds}")
    typer.echo("next: review params.yaml, then `dvc repro` (after `git init && dvc init` if new)")


@app.command("dvc-yaml")
def dvc_yaml(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="The file to write.")] = Path("dvc.yaml"),
    sample: Annotated[
        bool | None,
        typer.Option(
            help="Include the sample stage (default: when the sources read the sample folder)."
        ),
    ] = None,
) -> None:
    """Regenerate dvc.yaml: each stage's deps from its imports and the sources params names."""
    from dataops.config import load_params_data
    from dataops.dvcyaml import SAMPLE_OUT, render, source_deps

    def go() -> Path:
        data = load_params_data(params)
        with_sample = sample
        if with_sample is None:
            with_sample = any(
                d == SAMPLE_OUT or d.startswith(SAMPLE_OUT + "/") for d in source_deps(data)
            )
        own_code = (params.resolve().parent / "dataops" / "__init__.py").is_file()
        text = render(data, with_sample=with_sample, code=own_code)
        out.write_text(text, encoding="utf-8")
        return out

    typer.echo(f"wrote {_run('dvc-yaml', go, params, record=False, out=out)}")


@app.command()
def versions(
    repo: Annotated[Path, typer.Option(help="The project's git repository.")] = Path(),
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List published versions: tag, date, examples per split, size, verdict, fingerprint."""
    import dataclasses
    import json

    from dataops.versions import list_versions

    rows = _run("versions", lambda: list_versions(repo, dataset), record=False)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(v) for v in rows], indent=2, sort_keys=True))
        return
    if not rows:
        typer.echo("no published versions (a run of the Airflow DAG, or `publish`, makes one)")
        return
    for v in rows:
        verdict = {True: "PASSED", False: "FAILED", None: "-"}[v.ok]
        splits = " ".join(f"{k}={n}" for k, n in v.num_examples.items())
        same = f"  (same data as {v.duplicate_of})" if v.duplicate_of else ""
        typer.echo(
            f"{v.tag:<24} {v.date[:10]:<10} {verdict:<6} {v.num_bytes / 2**20:8.1f} MiB  "
            f"{splits}  {(v.fingerprint or '')[:12]}{same}"
        )


@app.command()
def head(
    directory: Annotated[Path, typer.Argument(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    split: Annotated[str, typer.Option(help="Split (or slice, e.g. 'train[:10]').")] = "train",
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="Examples to show.")] = 5,
) -> None:
    """Print the first examples of a split, decoded, with class names."""
    _quiet_tensorflow()
    from dataops.preview import render_head

    typer.echo(_run("head", lambda: render_head(directory, split, n), record=False), nl=False)


@app.command()
def show(
    directory: Annotated[Path, typer.Argument(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write.")] = Path("grid.png"),
    split: Annotated[str, typer.Option(help="Split.")] = "train",
    image: Annotated[str | None, typer.Option(help="Image feature (default: the first).")] = None,
    label: Annotated[
        str | None, typer.Option(help="Label feature (default: the first with classes).")
    ] = None,
    per_class: Annotated[int, typer.Option(min=1, max=32, help="Images per class.")] = 8,
) -> None:
    """Write an image grid, one row per class (like tfds.show_examples)."""
    _quiet_tensorflow()
    from dataops.preview import write_grid

    path = _run(
        "show",
        lambda: write_grid(directory, out, split, image, label, per_class),
        record=False,
        out=out,
    )
    typer.echo(f"wrote {path}")


class ExportFormat(enum.StrEnum):
    """The formats of `dataops export` (`dataops.export.FORMATS`)."""

    snapshot = "snapshot"
    parquet = "parquet"
    hdf5 = "hdf5"


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="The export format.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (snapshot, parquet) or file (hdf5).")
    ],
) -> None:
    """Export a dataset as a tf.data snapshot, Parquet files or one HDF5 file, with its metadata."""
    _quiet_tensorflow()
    from dataops.export import run_export

    r = _run("export", lambda: run_export(directory, format.value, out), record=False, out=out)
    _log("export.done", out=str(r.out), format=r.format, examples=r.num_examples)


@app.command("export-preprocessor")
def export_preprocessor(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output SavedModel folder.")],
) -> None:
    """Write the fitted preprocessing as a SavedModel: raw columns in, stored features out."""
    from dataops.serving import export_preprocessor as run

    _quiet_tensorflow()
    r = _run("export-preprocessor", lambda: run(directory, out), record=False, out=out)
    _log("export_preprocessor.done", out=str(r.out), inputs=r.inputs, outputs=r.outputs)


def main(argv: Sequence[str] | None = None) -> None:
    """The `dataops` entry point: SIGINT/SIGTERM handled, every failure one `error:` line."""
    args = list(sys.argv[1:] if argv is None else argv)
    _OPTS.update(quiet=False, verbose=False, debug=False, reported=False)
    if "--debug" in args:  # accepted anywhere, e.g. `dataops ingest --debug`
        args = [a for a in args if a != "--debug"]
        _OPTS["debug"] = True
    if os.environ.get("DATAOPS_DEBUG", "") not in ("", "0"):
        _OPTS["debug"] = True
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
        code = _fail(Interrupted(received() or 2))
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - outside a command body (parsing, imports)
        code = _fail(err)
    if received() is not None and not _OPTS["reported"]:
        # interrupted outside a command body; typer turns that into a silent Exit(130)
        code = _fail(Interrupted(received() or 2))
    # Past this point the outcome is decided: a signal arriving while Python shuts down (which
    # restores the default handlers) would otherwise kill the process with -15 after a success.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
