"""Beam byte ranges are cut at `\\n` like the in-process chunks: a quoted value holding a line
break (even one straddling a range cut) or a lone CR gives the in-process error, at the same
line; one-line records with CRLF ends and quoted CRs give the in-process bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")

from dataops.beam.ingest import run_ingest_beam  # noqa: E402
from dataops.config import IngestParams  # noqa: E402
from dataops.errors import DatasetError  # noqa: E402
from dataops.stages.ingest import run_ingest  # noqa: E402
from tests.support.records import folder_bytes, snapshot_parts  # noqa: E402

OPTIONS = "--direct_num_workers=1 --direct_running_mode=in_memory"


def _params(key: str | None = "id") -> IngestParams:
    return IngestParams.model_validate(
        {"key": key, "batch_rows": 64, "sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    )


def _write(root: Path, data: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "t.csv").write_bytes(data)
    return root


def _rows(start: int, stop: int, end: bytes = b"\n") -> bytes:
    return b"".join(b"%d,r%d" % (i, i) + end for i in range(start, stop))


@pytest.mark.parametrize("range_bytes", [50, 685, 1 << 20])
def test_a_quoted_line_break_across_a_range_cut_is_the_in_process_error(tmp_path, range_bytes):
    # the record starts on line 102; at 685 bytes the first range ends after its first line
    data = b"id,x\n" + _rows(0, 100) + b'100,"he\nllo,9\n"\n' + _rows(101, 200)
    root = _write(tmp_path, data)
    with pytest.raises(DatasetError) as local:
        run_ingest(_params(), root, root / "a", on_error="skip")
    with pytest.raises(DatasetError) as beam:
        run_ingest_beam(_params(), root, root / "b", "skip", OPTIONS, range_bytes)
    assert str(beam.value) == str(local.value)
    assert str(beam.value).startswith("t.csv: line 102: a quoted value goes on past")


@pytest.mark.parametrize(
    "data",
    [b"id,x\r1,a\n2,b\n", b"id,x\n" + _rows(0, 50).replace(b"\n7,", b"\r7,")],
    ids=["in-header", "in-data"],
)
def test_a_lone_carriage_return_is_the_in_process_error(tmp_path, data):
    root = _write(tmp_path, data)
    with pytest.raises(DatasetError) as local:
        run_ingest(_params(None), root, root / "a")
    with pytest.raises(DatasetError) as beam:
        run_ingest_beam(_params(None), root, root / "b", "fail", OPTIONS, 60)
    assert str(beam.value) == str(local.value)
    assert "a carriage return not followed by a newline" in str(beam.value)


@pytest.mark.parametrize("key", ["id", None])
def test_crlf_bom_and_quoted_cr_records_give_the_in_process_bytes(tmp_path, key):
    lines = _rows(0, 300, b"\r\n").split(b"\r\n")
    lines[40] = b'40,"a\rb"'
    lines[41] = b""
    lines[120] = b'120,"c,""d"""'
    data = b"\xef\xbb\xbfid,x\r\n" + b"\r\n".join(lines).rstrip(b"\r\n")  # no final newline
    root = _write(tmp_path, data)
    run_ingest(_params(key), root, root / "a")
    for rb in (64, 333):
        run_ingest_beam(_params(key), root, root / f"b{rb}", "fail", OPTIONS, rb)
        assert folder_bytes(root / f"b{rb}") == folder_bytes(root / "a")


def test_a_bad_row_alone_in_a_range_still_takes_part_in_the_key_check(tmp_path):
    # line 3 is malformed with key 7, a good row with key 7 comes later: in-process the first
    # row of key 7 is the bad one, so the later one is a dropped duplicate. A range holding only
    # the bad line did not hash its key: Beam kept the good row (other bytes, exit 0).
    data = b"id,x\n1,a\n7,b,extra\n2,c\n7,d\n3,e\n"
    root = _write(tmp_path, data)
    run_ingest(_params(), root, root / "a", on_error="skip")
    run_ingest_beam(_params(), root, root / "b", "skip", OPTIONS, 1)
    assert folder_bytes(root / "b") == folder_bytes(root / "a")


@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_parts_written_by_workers_are_the_in_process_parts(tmp_path, monkeypatch, on_error):
    """Snapshot parts of 128 rows (two row groups of 64) from ranges of ~1 KB: a part takes
    rows from several ranges, a range feeds several parts; under `skip`, bad rows in the
    ranges shift every later part. Same files, same names as in process."""
    import dataops.stages.snapshot_files as snapshot_files

    monkeypatch.setattr(snapshot_files, "PART_BATCHES", 2)
    lines = _rows(0, 700).split(b"\n")
    if on_error == "skip":
        lines[90], lines[333] = b"90", b"333,a,b"  # malformed: too few, too many fields
    root = _write(tmp_path, b"id,x\n" + b"\n".join(lines))
    run_ingest(_params(), root, root / "a", on_error=on_error)
    run_ingest_beam(_params(), root, root / "b", on_error, OPTIONS, 1000)
    parts = snapshot_parts(root / "a")
    rows = 698 if on_error == "skip" else 700
    assert len(parts) == -(-rows // 128) and len(parts) > 3
    assert folder_bytes(root / "b") == folder_bytes(root / "a")
