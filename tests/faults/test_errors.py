"""Resource and I/O failures through the CLI: disk full, read-only disk, missing paths, and the
mapping of every kind of exception to one `error:` line and an exit code."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from dataops.cli.failures import describe
from dataops.errors import ConfigError, DatasetError, Interrupted
from tests.support.faults import error_lines, leftovers, tree_digest
from tests.support.project import run_cli, small_params_data


def _mount_tmpfs(where: Path, size: str, ro: bool = False) -> None:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {r.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path):
    mounted: list[Path] = []

    def mount(size: str, ro: bool = False) -> Path:
        where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        _mount_tmpfs(where, size, ro)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture
def project(tmp_path: Path, small_dataset: Path) -> Path:
    """A project directory with params.yaml and the small dataset's preprocessed folder."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(small_params_data(240)))
    shutil.copytree(small_dataset / "data" / "preprocessed", root / "data" / "preprocessed")
    return root


def test_disk_full_keeps_the_previous_dataset(project: Path, tmpfs):
    disk = tmpfs("900k")  # holds one version of the dataset (~560 KB), not two
    out = disk / "tfrecords"
    first = run_cli("serialize", "--out", str(out), cwd=project)
    assert first.returncode == 0, first.stderr
    before = tree_digest(out)
    r = run_cli("serialize", "--out", str(out), cwd=project)
    assert r.returncode == 1
    assert error_lines(r.stderr) == [
        f"error: no space left on device writing {out}; free some space and re-run (outputs of earlier runs are unchanged, the partial output was removed)"
    ]
    assert tree_digest(out) == before
    assert sorted(p.name for p in disk.iterdir()) == [".tfrecords.incomplete-lock", "tfrecords"]


def test_read_only_disk(project: Path, tmpfs):
    disk = tmpfs("1m", ro=True)
    r = run_cli("serialize", "--out", str(disk / "tfrecords"), cwd=project)
    assert r.returncode == 1
    assert error_lines(r.stderr) == [
        f"error: read-only file system: {disk / 'tfrecords'}; write the outputs elsewhere"
    ]


def test_missing_input_folder(project: Path):
    r = run_cli("serialize", "--preprocessed", "nowhere", cwd=project)
    assert r.returncode == 1
    (line,) = error_lines(r.stderr)
    assert line.startswith("error: nowhere/"), line
    assert leftovers(project) == []
    assert not (project / "data" / "tfrecords").exists()


@pytest.mark.parametrize("cmd", [["info"], ["verify"]])
def test_read_only_commands_write_nothing(small_tfrecords: Path, tmp_path: Path, cmd: list[str]):
    r = run_cli(*cmd, str(small_tfrecords), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_stages_record_run_facts(tmp_path: Path):
    r = run_cli("sample", "--num-examples", "8", "--out", "raw", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "reports" / "runs" / "sample.json").is_file()


def test_sample_option_out_of_range_is_a_usage_error(tmp_path: Path):
    r = run_cli("sample", "--num-examples", "0", "--out", "raw", cwd=tmp_path)
    assert r.returncode == 2
    assert error_lines(r.stderr) == [
        "error: --num-examples: Input should be greater than or equal to 1 (got 0)"
    ]
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("err", "lines", "code"),
    [
        (ConfigError("params.yaml: key 'a': bad"), ["exp.yaml: key 'a': bad"], 2),
        (ConfigError("key 'a': bad"), ["exp.yaml: key 'a': bad"], 2),
        (DatasetError("data/x.csv: row 3: bad"), ["data/x.csv: row 3: bad"], 1),
        (Interrupted(15), ["interrupted (SIGTERM); nothing was written"], 143),
        (Interrupted(2), ["interrupted (SIGINT); nothing was written"], 130),
        (KeyboardInterrupt(), ["interrupted (SIGINT); nothing was written"], 130),
        (
            MemoryError(),
            [
                "out of memory; lower the batch_rows / partition_bytes params, shrink the input or use a machine with more memory"
            ],
            1,
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            [
                "no space left on device writing out/x; free some space and re-run (outputs of earlier runs are unchanged, the partial output was removed)"
            ],
            1,
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "data/raw"),
            ["permission denied: data/raw; check the owner and mode of the file or folder"],
            1,
        ),
        (FileNotFoundError(errno.ENOENT, "No such file", "a.csv"), ["not found: a.csv"], 1),
        (
            RuntimeError("pyarrow: No space left on device"),
            [
                "no space left on device writing out/x; free some space and re-run (outputs of earlier runs are unchanged, the partial output was removed)"
            ],
            1,
        ),
        (
            ValueError("x" * 10_000),
            [
                f"unexpected ValueError: {'x' * 200}… (10000 chars); re-run with --debug for the traceback and report it"
            ],
            1,
        ),
        (
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
            [
                "cannot decode text as utf-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte; convert the input to UTF-8"
            ],
            1,
        ),
    ],
)
def test_every_kind_of_failure_maps_to_lines_and_a_code(err, lines, code, monkeypatch):
    from dataops import fsutil

    monkeypatch.setattr(fsutil, "_COMMITTED", [])  # this process committed nothing
    assert describe(err, Path("exp.yaml"), Path("out/x")) == (lines, code)


def test_pydantic_errors_outside_params_are_one_line():
    from dataops.metadata import DatasetMetadata

    with pytest.raises(Exception) as info:
        DatasetMetadata.model_validate({"name": "x" * 5000})
    lines, code = describe(info.value)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("invalid DatasetMetadata: ")
    assert len(lines[0]) < 600


def test_no_space_message_without_root(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("runs as root only (the tmpfs tests cover the real disk-full case)")
    assert describe(OSError(errno.ENOSPC, "No space left on device"))[1] == 1


SWALLOW = """
import os, signal, sys
import dataops.stages.validate as v
from dataops import cli

real = v.run_validate


class Swallower:
    def __del__(self):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100000):  # the handler's exception is raised here; Python swallows it
                pass
        except BaseException:
            open("swallowed", "w").close()  # the proof that it was raised in the __del__
            raise


def run_validate(*args, **kwargs):
    Swallower()  # prints "Exception ignored in ...", as a TF iterator's __del__ can
    return real(*args, **kwargs)


v.run_validate = run_validate
cli.main(sys.argv[1:])
"""


def test_a_swallowed_interrupt_still_stops_validate(small_tfrecords: Path, tmp_path: Path):
    """The 6-in-62 case: the interrupt lands in a __del__, Python prints "Exception ignored" and
    goes on; validate must still not print a verdict, write its report or exit 0."""
    import sys

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params_data(240)))
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            SWALLOW,
            "validate",
            "--dataset",
            str(small_tfrecords),
            "--report",
            "rep.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert (tmp_path / "swallowed").exists()  # the interrupt really was swallowed
    assert "Exception ignored" not in r.stderr  # ... and not printed: it is reported once, below
    assert r.returncode == 143, r.stderr
    assert error_lines(r.stderr)[-1] == "error: interrupted (SIGTERM); nothing was written"
    assert "validate.done" not in r.stdout
    assert not (tmp_path / "rep.json").exists()


def test_validation_failure_ends_in_one_error_line(small_tfrecords: Path, tmp_path: Path):
    data = small_params_data(240)
    data["validate"]["min_examples"] = {"train": 10**6}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = run_cli("validate", "--dataset", str(small_tfrecords), "--report", "rep.json", cwd=tmp_path)
    lines = error_lines(r.stderr)
    assert r.returncode == 1
    assert lines[0].startswith("violation: split 'train': ")
    assert lines[-1] == "error: 1 violation (listed above); the report is rep.json"
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
