"""The stage commands: `sample`, `ingest`, `preprocess`, `serialize`, `validate` — each parses
its flags and calls the stage function (`dataops.stages`) through `run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataops import naming
from dataops.cli.progress import terminal_progress
from dataops.cli.run import (
    BeamOptionsOpt,
    EngineOpt,
    ParamsOpt,
    load_params_file,
    log,
    quiet_tensorflow,
    run,
)
from dataops.errors import ConfigError, ValidationFailed, stating_input


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
    from dataops.stages.sample import generate_sample

    def go():
        given = params if params is not None else Path("params.yaml")
        # a file named with --params must exist; only the implicit params.yaml may be absent
        use = params is not None or given.exists()
        base = load_params_file(given).sample if use else SampleParams()
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
                f"--{str(e['loc'][0]).replace('_', '-')}: {stating_input(e['msg'], e.get('input'))}"
            ) from None
        with terminal_progress() as progress:
            return generate_sample(out, checked, progress)

    r = run("sample", go, params, out=out)
    log("sample.done", out=str(r.out), examples=r.num_examples, classes=len(r.classes))


def ingest(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Snapshot folder.")] = Path(naming.SNAPSHOT_DIR),
) -> None:
    """Read and join the sources of `ingest` into a Parquet snapshot with a manifest."""
    from dataops.stages.ingest import run_ingest

    def go():
        p = load_params_file(params)
        with terminal_progress() as progress:
            return run_ingest(p.ingest, params.resolve().parent, out, p.dataset.on_error, progress)

    r = run("ingest", go, params, out=out)
    log("ingest.done", out=str(r.out), rows=r.num_rows, skipped=r.skipped)


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
    from dataops.stages.preprocess import run_preprocess

    def go():
        beam = use_beam(engine)
        p = load_params_file(params)
        if beam:
            from dataops.beam.preprocess import run_preprocess_beam

            return run_preprocess_beam(
                p.preprocess, snapshot, out, p.dataset.on_error, beam_options
            )
        with terminal_progress() as progress:
            return run_preprocess(p.preprocess, snapshot, out, p.dataset.on_error, progress)

    r = run("preprocess", go, params, out=out)
    log(
        "preprocess.done",
        out=str(r.out),
        examples=r.num_examples,
        skipped=r.skipped,
        engine=engine,
    )


def serialize(
    params: ParamsOpt = Path("params.yaml"),
    preprocessed: Annotated[Path, typer.Option(help="Folder from preprocess.")] = Path(
        naming.PREPROCESSED_DIR
    ),
    out: Annotated[Path, typer.Option(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    engine: EngineOpt = "local",
    beam_options: BeamOptionsOpt = None,
    to_remote: Annotated[
        str | None,
        typer.Option(
            metavar="<remote>",
            help="With --engine beam: upload the shards into this DVC remote and write the stage's "
            "dvc.lock entry, not --out (run directly, not under dvc repro).",
        ),
    ] = None,
) -> None:
    """Write TFRecord shards of tf.train.Example and metadata.json."""
    from dataops.beam import use_beam
    from dataops.stages.serialize import run_serialize

    def go():
        beam = use_beam(engine)
        p = load_params_file(params)
        if beam:
            from dataops.beam.serialize import run_serialize_beam

            return run_serialize_beam(
                p.serialize, p.dataset, preprocessed, out, beam_options, to_remote
            )
        if to_remote is not None:
            raise ConfigError("--to-remote needs --engine beam (its workers do the uploads)")
        with terminal_progress() as progress:
            return run_serialize(p.serialize, p.dataset, preprocessed, out, progress)

    r = run("serialize", go, params, out=out)
    log(
        "serialize.done",
        out=str(r.out),
        engine=engine,
        **({"remote": to_remote, "md5": r.locked.md5} if to_remote is not None else {}),
        examples=r.metadata.num_examples,
        shards={s.name: len(s.shards) for s in r.metadata.splits},
    )


def validate(
    params: ParamsOpt = Path("params.yaml"),
    dataset: Annotated[Path, typer.Option(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    report: Annotated[Path, typer.Option(help="Report file (JSON).")] = Path(naming.REPORT_FILE),
) -> None:
    """Re-read every shard with TensorFlow and check the expectations; exit 1 on violations."""
    quiet_tensorflow()
    from dataops.stages.validate import run_validate

    def go():
        p = load_params_file(params)
        with terminal_progress() as progress:
            r = run_validate(p.validate_, dataset, report, progress)
        if r.violations:
            raise ValidationFailed(r.violations)
        return r

    r = run("validate", go, params, out=report)
    log("validate.done", report=str(report), ok=r.ok)
