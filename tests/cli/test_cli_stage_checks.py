"""The order in which every stage command checks what it was given (`dataops.cli.stages.call_stage`):
the engine, then the params file, then a flag only the Beam engine takes — each failure one
`error:` line, exit 2, before any output is written."""

from __future__ import annotations

import shutil

import pytest

from tests.support.project import REPO, run_cli

STAGES = ("sample", "ingest", "preprocess", "serialize", "validate")


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("stage", STAGES)
def test_a_params_file_named_but_absent_is_one_error_line(stage, tmp_path):
    r = run_cli(stage, "--params", "missing.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert _errors(r.stderr) == ["error: missing.yaml: file not found"]
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a run record


@pytest.mark.parametrize("stage", ("preprocess", "serialize"))
def test_the_engine_is_checked_before_the_params_file(stage, tmp_path):
    r = run_cli(stage, "--engine", "spark", "--params", "missing.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert _errors(r.stderr) == [
        "error: --engine / $DATAOPS_ENGINE: 'spark' is not one of local, beam"
    ]


def test_to_remote_on_the_local_engine_is_refused_after_the_params_are_read(tmp_path):
    r = run_cli("serialize", "--to-remote", "store", "--params", "missing.yaml", cwd=tmp_path)
    assert _errors(r.stderr) == ["error: missing.yaml: file not found"]

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    r = run_cli("serialize", "--to-remote", "store", "--out", "ds", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert _errors(r.stderr) == [
        "error: --to-remote needs --engine beam (its workers do the uploads)"
    ]
    assert not (tmp_path / "ds").exists()
