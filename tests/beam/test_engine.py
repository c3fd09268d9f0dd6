"""Choosing the engine: `--engine` / `$DATAOPS_ENGINE` and the Beam options; the data and
`dvc.lock` do not depend on it."""

from __future__ import annotations

import os

import pytest

from tests.support.project import run_cli


def test_an_unknown_engine_is_a_usage_error(tmp_path):
    r = run_cli("serialize", "--engine", "spark", cwd=tmp_path)
    assert r.returncode == 2
    assert "error: --engine / $DATAOPS_ENGINE: 'spark' is not one of local, beam" in r.stderr


def test_engine_beam_without_beam_says_what_to_install(tmp_path):
    # Beam is installed in the app environment: hide it behind a module that fails to import,
    # first on the path, as a library install without the `beam` extra would see it.
    shadow = tmp_path / "shadow" / "apache_beam"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'apache_beam'\", name='apache_beam')\n"
    )
    path = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    r = run_cli("preprocess", cwd=tmp_path, env={"DATAOPS_ENGINE": "beam", "PYTHONPATH": path})
    assert r.returncode == 2
    assert "--engine beam needs Apache Beam: install the 'beam' extra" in r.stderr


@pytest.mark.slow
def test_dvc_repro_on_beam_records_the_same_dvc_lock(tmp_path):
    """The same project reproduced in process, then forced again with the heavy stages on Beam
    (chosen through the environment, as an Airflow task or a CI job would): same dvc.lock."""
    pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")
    from tests.support.project import make_project, sh

    proj = make_project(tmp_path / "p", 150)
    sh("dvc", "repro", cwd=proj)
    lock = (proj / "dvc.lock").read_text()
    os.environ["DATAOPS_ENGINE"] = "beam"
    os.environ["DATAOPS_BEAM_OPTIONS"] = (
        "--direct_num_workers=2 --direct_running_mode=multi_threading"
    )
    try:
        out = sh("dvc", "repro", "--force", "--no-run-cache", cwd=proj)
    finally:
        del os.environ["DATAOPS_ENGINE"], os.environ["DATAOPS_BEAM_OPTIONS"]
    assert "preprocess.done" in out and out.count("engine=beam") == 3, out  # ingest too
    assert (proj / "dvc.lock").read_text() == lock


def _raise(kind: str) -> object:
    from dataops.errors import ConfigError, DatasetError

    def fn(_: object) -> None:
        if kind == "config":
            raise ConfigError("params.yaml: preprocess.x: bad")
        if kind == "data":
            raise DatasetError("t.csv: line 3: bad")
        try:
            raise DatasetError("inner")
        except DatasetError:
            raise ValueError("outer") from None

    return fn


@pytest.mark.parametrize("mode", ["in_memory", "multi_threading"])
def test_an_error_a_worker_raises_is_the_driver_s_one_line(tmp_path, mode):
    """Beam hands a worker's exception back as a RuntimeError holding its traceback (or with
    ` [while running '<step>']` appended): a ConfigError/DatasetError is raised again as its
    one line; any other error is left as Beam raised it."""
    beam = pytest.importorskip("apache_beam", reason="Apache Beam is not installed")
    from dataops.beam.runner import run_pipeline
    from dataops.errors import ConfigError, DatasetError

    args = [f"--direct_running_mode={mode}", "--direct_num_workers=2"]
    for kind, error, text in [
        ("config", ConfigError, "params.yaml: preprocess.x: bad"),
        ("data", DatasetError, "t.csv: line 3: bad"),
    ]:
        with pytest.raises(error) as err:
            run_pipeline(
                lambda p, k=kind: p | beam.Create([1]) | beam.Map(_raise(k)), args, str(tmp_path)
            )
        assert str(err.value) == text
    with pytest.raises(Exception) as err:
        run_pipeline(
            lambda p: p | beam.Create([1]) | beam.Map(_raise("other")), args, str(tmp_path)
        )
    assert not isinstance(err.value, DatasetError) and "outer" in str(err.value)
