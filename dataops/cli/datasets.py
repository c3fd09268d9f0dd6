"""Commands over a dataset directory: `verify`, `info`, `schema`, `head`, `show`, `export`,
`export-preprocessor`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from dataops import naming
from dataops.cli.paths import local_argument, local_option
from dataops.cli.run import log, quiet_tensorflow, run


def verify(
    directory: Annotated[Path, local_argument(help="Dataset folder (with metadata.json).")] = Path(
        naming.DATASET_DIR
    ),
) -> None:
    """Check a dataset folder against its metadata.json: files, sizes, sha256, records, counts."""
    from dataops.stages.verify import verify_dataset

    r = run("verify", lambda: verify_dataset(directory), record=False)
    if r.problems:
        for line in r.problems:
            typer.echo(f"problem: {line}", err=True)
        raise typer.Exit(1)
    total = sum(r.metadata.num_examples.values())
    typer.echo(
        f"ok: {directory} — {total} examples in {sum(len(s.shards) for s in r.metadata.splits)} shards match metadata.json"
    )


def info(
    directory: Annotated[Path, local_argument(help="Dataset folder (with metadata.json).")] = Path(
        naming.DATASET_DIR
    ),
    report: Annotated[Path | None, local_option(help="Validation report to summarize too.")] = None,
) -> None:
    """Print a human summary of a dataset: features, splits, shards, validation verdict."""
    from dataops.tools.summary import render_info

    text = run("info", lambda: render_info(directory, report), record=False)
    typer.echo(text)


def schema(
    name: Annotated[
        str,
        typer.Argument(help="Which file: metadata, manifest, state, validation or export."),
    ] = "metadata",
    out: Annotated[
        Path | None, local_option(writes=True, help="Write here instead of stdout.")
    ] = None,
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
        run("schema", lambda: out.write_text(text, encoding="utf-8"), record=False, out=out)


def head(
    directory: Annotated[Path, local_argument(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    split: Annotated[str, typer.Option(help="Split (or slice, e.g. 'train[:10]').")] = "train",
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="Examples to show.")] = 5,
) -> None:
    """Print the first examples of a split, decoded, with class names."""
    quiet_tensorflow()
    from dataops.tools.preview import render_head

    typer.echo(run("head", lambda: render_head(directory, split, n), record=False), nl=False)


def show(
    directory: Annotated[Path, local_argument(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    out: Annotated[Path, local_option("--out", "-o", writes=True, help="The PNG to write.")] = Path(
        "grid.png"
    ),
    split: Annotated[str, typer.Option(help="Split.")] = "train",
    image: Annotated[str | None, typer.Option(help="Image feature (default: the first).")] = None,
    label: Annotated[
        str | None, typer.Option(help="Label feature (default: the first with classes).")
    ] = None,
    per_class: Annotated[int, typer.Option(min=1, max=32, help="Images per class.")] = 8,
) -> None:
    """Write an image grid, one row per class (like tfds.show_examples)."""
    quiet_tensorflow()
    from dataops.tools.preview import write_grid

    path = run(
        "show",
        lambda: write_grid(directory, out, split, image, label, per_class),
        record=False,
        out=out,
    )
    typer.echo(f"wrote {path}")


class ExportFormat(enum.StrEnum):
    """The formats of `dataops export` (`dataops.tools.export.FORMATS`)."""

    snapshot = "snapshot"
    parquet = "parquet"
    hdf5 = "hdf5"


def export(
    directory: Annotated[Path, local_argument(help="Dataset folder (with metadata.json).")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="The export format.")],
    out: Annotated[
        Path,
        local_option(
            "--out", "-o", writes=True, help="Output folder (snapshot, parquet) or file (hdf5)."
        ),
    ],
) -> None:
    """Export a dataset as a tf.data snapshot, Parquet files or one HDF5 file, with its metadata."""
    quiet_tensorflow()
    from dataops.tools.export import run_export

    r = run("export", lambda: run_export(directory, format.value, out), record=False, out=out)
    log("export.done", out=str(r.out), format=r.format, examples=r.num_examples)


def export_preprocessor(
    directory: Annotated[Path, local_argument(help="Dataset folder (with metadata.json).")],
    out: Annotated[
        Path, local_option("--out", "-o", writes=True, help="Output SavedModel folder.")
    ],
) -> None:
    """Write the fitted preprocessing as a SavedModel: raw columns in, stored features out."""
    from dataops.tools.serving import export_preprocessor as write_preprocessor

    quiet_tensorflow()
    r = run(
        "export-preprocessor", lambda: write_preprocessor(directory, out), record=False, out=out
    )
    log("export_preprocessor.done", out=str(r.out), inputs=r.inputs, outputs=r.outputs)
