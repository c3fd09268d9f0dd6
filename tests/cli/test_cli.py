"""The command line as a user meets it: help, exit codes, summaries."""

from __future__ import annotations

import subprocess
import sys

from tests.support.project import run_cli

COMMANDS = ["sample", "ingest", "preprocess", "serialize", "validate", "verify", "info", "schema"]


def test_help_lists_every_command():
    r = run_cli("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert name in r.stdout


def test_cli_entry_does_not_import_tensorflow_or_pyarrow():
    code = "import sys, dataops.cli; bad = [m for m in ('tensorflow', 'pyarrow', 'dvc') if m in sys.modules]; print(bad)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_info_summarizes(small_dataset):
    r = run_cli(
        "info",
        str(small_dataset / "data" / "tfrecords"),
        "--report",
        str(small_dataset / "reports" / "validation.json"),
    )
    assert r.returncode == 0, r.stderr
    assert "dataset     sample" in r.stdout
    assert "validation  PASSED" in r.stdout
    for split in ("train", "validation", "test"):
        assert split in r.stdout


def test_info_on_a_folder_without_metadata(tmp_path):
    r = run_cli("info", str(tmp_path))
    assert r.returncode == 1
    assert f"{tmp_path}/metadata.json: not found" in r.stderr


def test_short_help_version_and_no_bool_metavar():
    short = run_cli("-h")
    assert short.returncode == 0
    assert short.stdout == run_cli("--help").stdout
    sub = run_cli("ingest", "-h")
    assert sub.returncode == 0
    assert "<bool>" not in sub.stdout
    assert "-h, --help" in sub.stdout
    v = run_cli("--version")
    assert v.returncode == 0
    assert v.stdout.startswith("dataops ")


def test_usage_errors_are_one_line_exit_2(tmp_path):
    r = run_cli("export", str(tmp_path), "--format", "csv", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: Invalid value for '--format' / '-f': Value error, 'csv' is not one of 'snapshot', 'parquet', 'hdf5'. (see 'dataops export -h')"
    ]
    r = run_cli("ingest", "--bogus")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[0].startswith("error: No such option: --bogus")
    r = run_cli("frobnicate")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1


def test_export_formats_match_the_export_module():
    from dataops.cli.datasets import ExportFormat
    from dataops.tools.export import FORMATS

    assert tuple(f.value for f in ExportFormat) == FORMATS


def test_quiet_prints_nothing_on_success(tmp_path):
    r = run_cli("-q", "sample", "--num-examples", "8", "--out", "raw", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    loud = run_cli("-v", "sample", "--num-examples", "8", "--out", "raw", cwd=tmp_path)
    assert "sample.done" in loud.stdout
    assert loud.stderr.startswith("sample: ")


def test_sample_with_a_missing_params_file_given_is_an_error(tmp_path):
    r = run_cli("sample", "--params", "nope.yaml", "--num-examples", "8", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: nope.yaml: file not found"]
    assert list(tmp_path.iterdir()) == []
