"""The snapshot's parts: read as one sequence whatever the batch size, and a snapshot whose
parts are not whole — one missing, one replaced, an older single file — is refused with one line."""

from __future__ import annotations

import shutil

import pytest

import dataops.stages.snapshot_files as snapshot_files
from dataops.config import IngestParams, PreprocessParams
from dataops.errors import DatasetError
from dataops.stages.ingest import run_ingest
from dataops.stages.preprocess import run_preprocess
from dataops.stages.snapshot_files import SnapshotFiles
from tests.support.records import read_snapshot, snapshot_parts

PRE = PreprocessParams.model_validate(
    {
        "split": {"ratios": {"train": 1.0}},
        "features": [{"name": "id", "kind": "key"}, {"name": "x", "kind": "numeric"}],
    }
)


@pytest.fixture
def snap(tmp_path, monkeypatch):
    """300 rows in parts of 2 row groups of 16 rows: 10 parts, the last one of 12 rows."""
    monkeypatch.setattr(snapshot_files, "PART_BATCHES", 2)
    (tmp_path / "t.csv").write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(300)))
    params = {
        "key": "id",
        "batch_rows": 16,
        "sources": [{"name": "t", "format": "csv", "path": "t.csv"}],
    }
    run_ingest(IngestParams.model_validate(params), tmp_path, tmp_path / "snap")
    return tmp_path / "snap"


@pytest.mark.parametrize("batch_rows", [1, 7, 32, 50, 1000])
def test_tables_of_exactly_batch_rows_across_parts(snap, batch_rows):
    files = SnapshotFiles.local(snap)
    assert len(files.paths) == 10 and files.num_rows == 300
    tables = list(files.iter_tables(0, 300, batch_rows, ["id"]))
    assert [t.num_rows for t in tables[:-1]] == [batch_rows] * (len(tables) - 1)
    ids = [v for t in tables for v in t.column("id").to_pylist()]
    assert ids == read_snapshot(snap).column("id").to_pylist() == [str(i) for i in range(300)]
    assert files.column_rows("id", 30, 75) == [str(i) for i in range(30, 75)]


def test_a_missing_part_is_refused(snap, tmp_path):
    snapshot_parts(snap)[3].unlink()
    with pytest.raises(
        DatasetError,
        match=r"snap: the snapshot's parts are not whole \(9 files for 10 parts; first odd one: snapshot-00003-of-00010.parquet\)",
    ):
        run_preprocess(PRE, snap, tmp_path / "pre")
    assert not (tmp_path / "pre").exists()


def test_a_replaced_part_is_refused(snap, tmp_path):
    parts = snapshot_parts(snap)
    shutil.copy(parts[9], parts[0])  # 12 rows where 32 were
    with pytest.raises(
        DatasetError, match="the snapshot's parts hold 280 rows, its manifest.json 300"
    ):
        run_preprocess(PRE, snap, tmp_path / "pre")


def test_an_older_single_file_snapshot_is_refused(snap, tmp_path):
    for p in snapshot_parts(snap):
        p.unlink()
    (snap / "snapshot.parquet").write_bytes(b"PAR1")
    with pytest.raises(
        DatasetError,
        match=r"no snapshot part \(a `snapshot.parquet` of an older dataops is there\) — run the ingest stage first",
    ):
        run_preprocess(PRE, snap, tmp_path / "pre")


@pytest.mark.parametrize("damage", ["footer", "first page"])
def test_a_damaged_part_is_one_line_naming_it(snap, tmp_path, damage):
    part = snapshot_parts(snap)[4]
    data = part.read_bytes()
    if damage == "footer":  # opening it fails
        part.write_bytes(data[: len(data) // 2])
    else:  # the footer reads, the first page's header does not
        part.write_bytes(data[:4] + b"\xff" * 40 + data[44:])
    with pytest.raises(DatasetError) as err:
        run_preprocess(PRE, snap, tmp_path / "pre")
    line = str(err.value)
    assert line.startswith(f"{part}: not a readable snapshot part (") and "\n" not in line
    assert line.endswith("— run the ingest stage again")
    assert not (tmp_path / "pre").exists()


@pytest.mark.parametrize(
    "mode",
    [
        "--direct_num_workers=1 --direct_running_mode=in_memory",
        "--direct_num_workers=2 --direct_running_mode=multi_threading",
    ],
)
def test_a_damaged_page_read_by_a_beam_worker_is_the_same_one_line(snap, tmp_path, mode):
    """The driver opens every part's footer; a damaged page is met by a worker, whose
    DatasetError Beam wraps (a traceback, or ` [while running ...]`): raised as in-process."""
    pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")
    from dataops.beam.preprocess import run_preprocess_beam

    part = snapshot_parts(snap)[4]
    data = part.read_bytes()
    part.write_bytes(data[:4] + b"\xff" * 40 + data[44:])
    with pytest.raises(DatasetError) as local:
        run_preprocess(PRE, snap, tmp_path / "a")
    with pytest.raises(DatasetError) as beam:
        run_preprocess_beam(PRE, snap, tmp_path / "b", "fail", mode, 2)
    assert str(beam.value) == str(local.value)
    assert not (tmp_path / "b").exists()
