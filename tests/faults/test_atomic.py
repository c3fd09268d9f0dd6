"""atomic_dir and the process scratch folder: stale leftovers removed, live ones kept, the output
never missing, the old version never kept after success, interrupts abort the commit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataops import errors, fsutil
from dataops.errors import DatasetError, Interrupted
from dataops.fsutil import atomic_dir, process_scratch, write_json


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_success_replaces_and_keeps_nothing_else(tmp_path: Path):
    out = tmp_path / "tfrecords"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(out) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tfrecords.incomplete-lock", "tfrecords"]


def test_failure_keeps_the_previous_version(tmp_path: Path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a").write_text("partial")
        raise RuntimeError("boom")
    assert (out / "a").read_text() == "1"
    assert [
        p.name for p in tmp_path.iterdir() if "incomplete-" in p.name and "lock" not in p.name
    ] == []


def test_stale_leftovers_are_removed_at_the_next_start(tmp_path: Path):
    out = tmp_path / "out"
    for name in ("out.incomplete-1234-abcd0123", "out.incomplete-deadbeef", "out.old-0badf00d"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.tfrecord-00000-of-00001").write_bytes(b"partial")
    (tmp_path / "out.old-backup").mkdir()  # a user's folder, not ours: kept
    (tmp_path / "other.incomplete-1-2").mkdir()  # another output's: not this stage's to clean
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.incomplete-lock",
        "other.incomplete-1-2",
        "out",
        "out.old-backup",
    ]


def test_a_live_writer_is_never_cleaned_and_a_second_writer_is_refused(tmp_path: Path):
    out = tmp_path / "out"
    with atomic_dir(out) as live:
        (live / "x").write_text("in progress")
        with pytest.raises(
            DatasetError,
            match=rf"{out} is being written by another dataops process \(pid {os.getpid()}",
        ):
            with atomic_dir(out):
                pass
        assert (live / "x").read_text() == "in progress"
    assert (out / "x").read_text() == "in progress"


def test_the_cli_refuses_a_second_writer(tmp_path: Path):
    from tests.support.project import run_cli

    with atomic_dir(tmp_path / "raw"):
        r = run_cli("sample", "--out", "raw", "--num-examples", "8", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: raw is being written by another dataops process (pid {os.getpid()}, lock .raw.incomplete-lock); wait for it to finish or stop it"
    ]


def test_fallback_swap_restores_the_old_version_after_a_crash_between_renames(tmp_path: Path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "v").write_text("old")
    # What a kill -9 between the two renames of the non-Linux swap leaves: no `out`, the old
    # version aside, the new one complete but not in place.
    os.rename(out, tmp_path / "out.incomplete-1-aaaaaaaa.old")
    (tmp_path / "out.incomplete-1-aaaaaaaa").mkdir()
    fsutil._recover(out)
    assert (out / "v").read_text() == "old"


def test_fallback_swap_without_exchange(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    for v in ("1", "2"):
        with atomic_dir(out) as tmp:
            (tmp / "v").write_text(v)
    assert (out / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.incomplete-lock", "out"]


def test_an_interrupt_swallowed_earlier_still_aborts_the_commit(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(errors._state, "received", 15)
    out = tmp_path / "out"
    with pytest.raises(Interrupted) as err, atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert err.value.exit_code == 143
    assert not out.exists()
    with pytest.raises(Interrupted):
        write_json(tmp_path / "report.json", {"ok": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.incomplete-lock"]


def test_process_scratch_cleans_dead_owners_only(tmp_path: Path):
    import fcntl
    import tempfile

    root = tmp_path / fsutil.SCRATCH_ROOT_NAME
    dead = root / f"{_dead_pid()}-00000000"
    (dead / "dataops-ingest-x").mkdir(parents=True)
    (dead / ".lock").touch()
    alive = root / f"{os.getpid()}-11111111"  # lock held: a live run
    alive.mkdir()
    fd = os.open(alive / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with process_scratch(tmp_path) as mine:
            assert tempfile.gettempdir() == str(mine)
            with tempfile.TemporaryDirectory(prefix="dataops-ingest-") as t:
                assert Path(t).parent == mine
            assert not dead.exists()
            assert alive.exists()
        assert not mine.exists()
    finally:
        os.close(fd)


def test_outputs_never_replace_a_device_a_folder_or_a_file(tmp_path: Path):
    from dataops.errors import ConfigError

    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)  # stands for /dev/full or any device: os.replace would swap it for a file
    with pytest.raises(ConfigError, match="exists and is not a regular file"):
        write_json(fifo, {"ok": True})
    assert fifo.is_fifo()
    with pytest.raises(ConfigError, match="exists and is not a regular file"):
        write_json(tmp_path, {"ok": True})
    afile = tmp_path / "params.yaml"
    afile.write_text("keep me")
    with pytest.raises(ConfigError, match="exists and is not a folder"), atomic_dir(afile):
        pass
    assert afile.read_text() == "keep me"
