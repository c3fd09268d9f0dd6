"""The `dataops` command line: one thin command per stage, plus tools for dataset directories.

Exit codes: 0 success, 1 a data, integrity or validation failure, 2 a usage or config error.
Heavy libraries (TensorFlow, pyarrow) are imported only by the commands that need them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
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
from dataops.errors import DataopsError, ValidationFailed

app = typer.Typer(
    help="Versioned, reproducible TensorFlow datasets: ingest → preprocess → serialize → validate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="The params file.")]
RUNS_DIR = Path("reports") / "runs"


def _log(event: str, **kv: Any) -> None:
    import structlog

    structlog.get_logger("dataops").info(event, **kv)


def _run(stage: str, fn: Callable[[], Any]) -> Any:
    """Run a stage; map errors to exit codes; record volatile run facts (untracked)."""
    start = time.perf_counter()
    try:
        result = fn()
    except ValidationFailed as err:
        for line in err.violations:
            typer.echo(f"violation: {line}", err=True)
        raise typer.Exit(err.exit_code) from None
    except DataopsError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(err.exit_code) from None
    facts = {
        "stage": stage,
        "seconds": round(time.perf_counter() - start, 3),
        "host": platform.node(),
        "pid": os.getpid(),
        "finished_at": time.time(),
    }
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
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path(naming.RAW_DIR),
    num_examples: Annotated[
        int | None, typer.Option(help="Rows (default: sample.num_examples).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: sample.seed).")] = None,
) -> None:
    """Write the bundled sample source: PNG folders, a CSV and a JSON Lines file."""
    from dataops.config import SampleParams
    from dataops.sample import generate_sample

    def go():
        base = _params(params).sample if params.exists() else SampleParams()
        p = base.model_copy(
            update={
                k: v
                for k, v in {"num_examples": num_examples, "seed": seed}.items()
                if v is not None
            }
        )
        return generate_sample(out, SampleParams.model_validate(p.model_dump()))

    r = _run("sample", go)
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
        return run_ingest(p.ingest, params.resolve().parent, out, p.dataset.on_error)

    r = _run("ingest", go)
    _log("ingest.done", out=str(r.out), rows=r.num_rows, skipped=r.skipped)


@app.command()
def preprocess(
    params: ParamsOpt = Path("params.yaml"),
    snapshot: Annotated[Path, typer.Option(help="Snapshot folder (from ingest).")] = Path(
        naming.SNAPSHOT_DIR
    ),
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path(naming.PREPROCESSED_DIR),
) -> None:
    """Split, fit on train, and transform into one Parquet file per split."""
    from dataops.preprocess import run_preprocess

    def go():
        p = _params(params)
        return run_preprocess(p.preprocess, snapshot, out, p.dataset.on_error)

    r = _run("preprocess", go)
    _log("preprocess.done", out=str(r.out), examples=r.num_examples, skipped=r.skipped)


@app.command()
def serialize(
    params: ParamsOpt = Path("params.yaml"),
    preprocessed: Annotated[Path, typer.Option(help="Folder from preprocess.")] = Path(
        naming.PREPROCESSED_DIR
    ),
    out: Annotated[Path, typer.Option(help="Dataset folder.")] = Path(naming.DATASET_DIR),
) -> None:
    """Write TFRecord shards of tf.train.Example and metadata.json."""
    from dataops.serialize import run_serialize

    def go():
        p = _params(params)
        return run_serialize(p.serialize, p.dataset, preprocessed, out)

    r = _run("serialize", go)
    _log(
        "serialize.done",
        out=str(r.out),
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
    from dataops.validate import run_validate

    def go():
        p = _params(params)
        r = run_validate(p.validate_, dataset, report)
        if r.violations:
            raise ValidationFailed(r.violations)
        return r

    r = _run("validate", go)
    _log("validate.done", report=str(report), ok=r.ok)


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")] = Path(
        naming.DATASET_DIR
    ),
) -> None:
    """Check a dataset folder against its metadata.json: files, sizes, sha256, records, counts."""
    from dataops.verify import verify_dataset

    r = _run("verify", lambda: verify_dataset(directory))
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

    text = _run("info", lambda: render_info(directory, report))
    typer.echo(text)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of metadata.json (generated from the model)."""
    from dataops.fsutil import dumps_json
    from dataops.metadata import json_schema

    text = dumps_json(json_schema())
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")],
    format: Annotated[str, typer.Option("--format", "-f", help="snapshot, parquet or hdf5.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (snapshot, parquet) or file (hdf5).")
    ],
) -> None:
    """Export a dataset as a tf.data snapshot, Parquet files or one HDF5 file, with its metadata."""
    from dataops.export import run_export

    r = _run("export", lambda: run_export(directory, format, out))
    _log("export.done", out=str(r.out), format=r.format, examples=r.num_examples)


@app.command("export-preprocessor")
def export_preprocessor(
    directory: Annotated[Path, typer.Argument(help="Dataset folder (with metadata.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output SavedModel folder.")],
) -> None:
    """Write the fitted preprocessing as a SavedModel: raw columns in, stored features out."""
    from dataops.serving import export_preprocessor as run

    r = _run("export-preprocessor", lambda: run(directory, out))
    _log("export_preprocessor.done", out=str(r.out), inputs=r.inputs, outputs=r.outputs)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
