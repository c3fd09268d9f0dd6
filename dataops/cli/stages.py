"""The stage commands: `sample`, `ingest`, `preprocess`, `serialize`, `validate` — each parses
its flags and calls its stage function (`dataops.stages`) through `call_stage`, the one place
where params are loaded, the engine is checked, the run is wrapped and progress is drawn.

The folders preprocess and serialize read and write on the Beam engine may be object-store
URLs (`url_option`); every other path is local and refuses a URL (`dataops.cli.paths`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from dataops import naming
from dataops.cli.paths import (
    local_option,
    location,
    refuse_urls_off_beam,
    url_option,
)
from dataops.cli.progress import Progress, terminal_progress
from dataops.cli.run import (
    BeamOptionsOpt,
    EngineOpt,
    ParamsOpt,
    log,
    quiet_beam,
    quiet_tensorflow,
    run,
)
from dataops.errors import ConfigError, ValidationFailed, stating_input

if TYPE_CHECKING:
    from dataops.config import SampleParams

R = TypeVar("R")

ToRemoteOpt = Annotated[
    str | None,
    typer.Option(
        metavar="<remote>",
        help="With --engine beam: upload the output into this DVC remote and write the stage's "
        "dvc.lock entry, not --out; an input missing from the workspace is read from the remote "
        "(run directly, not under dvc repro).",
    ),
]


def _to_remote_needs_beam(to_remote: str | None) -> str | None:
    """`call_stage`'s `needs_beam` for a stage's --to-remote."""
    if to_remote is None:
        return None
    return "--to-remote needs --engine beam (its workers do the uploads)"


def _remote_fields(to_remote: str | None, r: Any) -> dict[str, str]:
    """The log fields of a --to-remote run: the remote and the output's md5 in dvc.lock."""
    return {"remote": to_remote, "md5": r.locked.md5} if to_remote is not None else {}


def call_stage(
    stage: str,
    params: Path | None,
    out: str | Path,
    local: Callable[[Any, Progress], R],
    *,
    load: Callable[[], Any] | None = None,
    engine: str = "local",
    beam: Callable[[Any], R] | None = None,
    needs_beam: str | None = None,
    check: Callable[[R], None] | None = None,
    urls: Sequence[tuple[str, str | Path]] = (),
) -> R:
    """Run a stage command through `run`, in this order: check `engine` (only a stage with a
    `beam` driver has one), refuse an object-store URL among `urls` ((option, value) pairs:
    the paths Beam's filesystems may reach) unless on the Beam engine, load the params
    (`load()`, else the params file `params`), then call `beam(p)` on the Beam engine, else
    refuse a flag only Beam takes (`needs_beam`, the message) or call `local(p, progress)` with
    bars on a terminal, and last `check(result)` once the bars are closed. Every failure is
    reported by `run` (exit 1 or 2). (A URL given for a path that is always local was refused
    earlier, while the command line was parsed: `dataops.cli.paths`.)"""

    def go() -> R:
        on_beam = False
        if beam is not None:
            from dataops.beam import use_beam

            if engine == "beam":
                quiet_beam()  # before Beam's import logs its first warning
            on_beam = use_beam(engine)
        if not on_beam:
            refuse_urls_off_beam(urls)
        if load is not None:
            p = load()
        else:
            from dataops.config import load_params

            assert params is not None  # a stage without its own `load` names a params file
            p = load_params(params)
        if beam is not None and on_beam:
            return beam(p)
        if needs_beam is not None:
            raise ConfigError(needs_beam)
        with terminal_progress() as progress:
            result = local(p, progress)
        if check is not None:
            check(result)
        return result

    result: R = run(stage, go, params, out=out)
    return result


def _sample_params(params: Path | None, num_examples: int | None, seed: int | None) -> SampleParams:
    """`sample` of the params file with the flags given on top; a file named with --params must
    exist, only the implicit params.yaml may be absent (then the defaults)."""
    from pydantic import ValidationError

    from dataops.config import SampleParams, load_params

    given = params if params is not None else Path("params.yaml")
    use = params is not None or given.exists()
    base = load_params(given).sample if use else SampleParams()
    flags = {"num_examples": num_examples, "seed": seed}
    p = base.model_copy(update={k: v for k, v in flags.items() if v is not None})
    try:
        return SampleParams.model_validate(p.model_dump())
    except ValidationError as err:
        e = err.errors()[0]
        raise ConfigError(
            f"--{str(e['loc'][0]).replace('_', '-')}: {stating_input(e['msg'], e.get('input'))}"
        ) from None


def _fail_on_violations(r: Any) -> None:
    if r.violations:
        raise ValidationFailed(r.violations)


def sample(
    params: Annotated[
        Path | None,
        local_option(
            "--params",
            "-p",
            help="The params file (default: params.yaml if there is one, else the defaults).",
        ),
    ] = None,
    out: Annotated[Path, local_option(writes=True, help="Output folder.")] = Path(
        naming.SAMPLE_DIR
    ),
    num_examples: Annotated[
        int | None, typer.Option(help="Rows (default: sample.num_examples).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: sample.seed).")] = None,
) -> None:
    """Write the bundled sample source: PNG folders, a CSV and a JSON Lines file."""
    from dataops.stages.sample import generate_sample

    r = call_stage(
        "sample",
        params,
        out,
        lambda p, progress: generate_sample(out, p, progress),
        load=lambda: _sample_params(params, num_examples, seed),
    )
    log("sample.done", out=str(r.out), examples=r.num_examples, classes=len(r.classes))


def ingest(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, local_option(writes=True, help="Snapshot folder.")] = Path(
        naming.SNAPSHOT_DIR
    ),
    engine: EngineOpt = "local",
    beam_options: BeamOptionsOpt = None,
    to_remote: ToRemoteOpt = None,
) -> None:
    """Read and join the sources of `ingest` into a Parquet snapshot with a manifest."""
    from dataops.stages.ingest import run_ingest

    def on_beam(p: Any) -> Any:
        from dataops.beam.ingest import run_ingest_beam

        return run_ingest_beam(
            p.ingest,
            params.resolve().parent,
            out,
            p.dataset.on_error,
            beam_options,
            to_remote=to_remote,
        )

    r = call_stage(
        "ingest",
        params,
        out,
        lambda p, progress: run_ingest(
            p.ingest, params.resolve().parent, out, p.dataset.on_error, progress
        ),
        engine=engine,
        beam=on_beam,
        needs_beam=_to_remote_needs_beam(to_remote),
    )
    log(
        "ingest.done",
        out=str(r.out),
        **_remote_fields(to_remote, r),
        rows=r.num_rows,
        skipped=r.skipped,
        engine=engine,
    )


def preprocess(
    params: ParamsOpt = Path("params.yaml"),
    snapshot: Annotated[
        str, url_option(help="Snapshot folder (from ingest); a URL with --engine beam.")
    ] = naming.SNAPSHOT_DIR,
    out: Annotated[
        str, url_option(help="Output folder; a URL with --engine beam.")
    ] = naming.PREPROCESSED_DIR,
    engine: EngineOpt = "local",
    beam_options: BeamOptionsOpt = None,
    to_remote: ToRemoteOpt = None,
) -> None:
    """Split, fit on train, and transform into one Parquet file per split."""
    from dataops.stages.preprocess import run_preprocess

    src, dest = location(snapshot), location(out)

    def on_beam(p: Any) -> Any:
        from dataops.beam.preprocess import run_preprocess_beam

        return run_preprocess_beam(
            p.preprocess, src, dest, p.dataset.on_error, beam_options, to_remote=to_remote
        )

    r = call_stage(
        "preprocess",
        params,
        dest,
        lambda p, progress: run_preprocess(
            p.preprocess, Path(src), Path(dest), p.dataset.on_error, progress
        ),
        engine=engine,
        beam=on_beam,
        needs_beam=_to_remote_needs_beam(to_remote),
        urls=[("--snapshot", src), ("--out", dest)],
    )
    log(
        "preprocess.done",
        out=str(r.out),
        **_remote_fields(to_remote, r),
        examples=r.num_examples,
        skipped=r.skipped,
        engine=engine,
    )


def serialize(
    params: ParamsOpt = Path("params.yaml"),
    preprocessed: Annotated[
        str, url_option(help="Folder from preprocess; a URL with --engine beam.")
    ] = naming.PREPROCESSED_DIR,
    out: Annotated[
        str, url_option(help="Dataset folder; a URL with --engine beam.")
    ] = naming.DATASET_DIR,
    engine: EngineOpt = "local",
    beam_options: BeamOptionsOpt = None,
    to_remote: ToRemoteOpt = None,
) -> None:
    """Write TFRecord shards of tf.train.Example and metadata.json."""
    from dataops.stages.serialize import run_serialize

    src, dest = location(preprocessed), location(out)

    def on_beam(p: Any) -> Any:
        from dataops.beam.serialize import run_serialize_beam

        return run_serialize_beam(p.serialize, p.dataset, src, dest, beam_options, to_remote)

    r = call_stage(
        "serialize",
        params,
        dest,
        lambda p, progress: run_serialize(p.serialize, p.dataset, Path(src), Path(dest), progress),
        engine=engine,
        beam=on_beam,
        needs_beam=_to_remote_needs_beam(to_remote),
        urls=[("--preprocessed", src), ("--out", dest)],
    )
    log(
        "serialize.done",
        out=str(r.out),
        engine=engine,
        **_remote_fields(to_remote, r),
        examples=r.metadata.num_examples,
        shards={s.name: len(s.shards) for s in r.metadata.splits},
    )


def validate(
    params: ParamsOpt = Path("params.yaml"),
    dataset: Annotated[Path, local_option(help="Dataset folder.")] = Path(naming.DATASET_DIR),
    report: Annotated[Path, local_option(writes=True, help="Report file (JSON).")] = Path(
        naming.REPORT_FILE
    ),
) -> None:
    """Re-read every shard with TensorFlow and check the expectations; exit 1 on violations."""
    quiet_tensorflow()
    from dataops.stages.validate import run_validate

    r = call_stage(
        "validate",
        params,
        report,
        lambda p, progress: run_validate(p.validate_, dataset, report, progress),
        check=_fail_on_violations,
    )
    log("validate.done", report=str(report), ok=r.ok)
