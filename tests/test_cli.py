"""The command line as a user meets it: help, exit codes, summaries."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli

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
