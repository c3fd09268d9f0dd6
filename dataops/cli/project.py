"""Project commands: `init` (params.yaml and dvc.yaml for a user's sources), `dvc-yaml`, and
`versions` (the published versions of the project's repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataops.cli.paths import local_option, reads_local
from dataops.cli.run import ParamsOpt, run


def init(
    source: Annotated[
        list[str],
        typer.Option(
            "--source",
            "-s",
            callback=reads_local,
            help="A source file or image folder (repeat).",
        ),
    ],
    key: Annotated[
        str | None, typer.Option(help="Key column (default: none, rows keyed by position).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column (categorical).")] = None,
    name: Annotated[str, typer.Option(help="Dataset name.")] = "dataset",
    force: Annotated[bool, typer.Option(help="Overwrite params.yaml and dvc.yaml.")] = False,
) -> None:
    """Write params.yaml and dvc.yaml for your own sources (features proposed from the data)."""
    from dataops.tools.project import init_project

    r = run(
        "init",
        lambda: init_project(Path(), source, key=key, label=label, name=name, force=force),
        record=False,
    )
    kinds = ", ".join(f"{f['name']} ({f['kind']})" for f in r.features)
    typer.echo(f"wrote {r.params} and {r.dvc_yaml}: features {kinds}")
    typer.echo("next: review params.yaml, then `dvc repro` (after `git init && dvc init` if new)")


def dvc_yaml(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, local_option(writes=True, help="The file to write.")] = Path("dvc.yaml"),
    sample: Annotated[
        bool | None,
        typer.Option(
            help="Include the sample stage (default: when the sources read the sample folder)."
        ),
    ] = None,
) -> None:
    """Regenerate dvc.yaml: each stage's deps from its imports and the sources params names."""
    from dataops.config import load_params_data
    from dataops.stages.dvcyaml import SAMPLE_OUT, render, source_deps

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

    typer.echo(f"wrote {run('dvc-yaml', go, params, record=False, out=out)}")


def versions(
    repo: Annotated[Path, local_option(help="The project's git repository.")] = Path(),
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List published versions: tag, date, examples per split, size, verdict, fingerprint."""
    import dataclasses
    import json

    from dataops.release.versions import list_versions

    rows = run("versions", lambda: list_versions(repo, dataset), record=False)
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
