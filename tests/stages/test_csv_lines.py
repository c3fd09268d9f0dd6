"""Each CSV record is one line, at any chunk size: a quoted value holding a line break or a lone
carriage return is refused with the file and line (cut at a chunk's `\\n` it merged, invented or
dropped rows with exit 0), and the lines that are records read the same at every chunk size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dataops.stages.ingest as ingest_mod
import dataops.stages.sources.csv as csv_mod
from dataops.config import IngestParams
from dataops.errors import DatasetError
from dataops.stages.ingest import run_ingest
from tests.support.records import read_snapshot, snapshot_bytes

ROWS = 8000  # > 64 KiB of text: the header read and the chunks below really cut the file
CHUNKS = [97, 301, 307, 1 << 20]


def _params(key: str | None = "id") -> IngestParams:
    return IngestParams.model_validate(
        {"key": key, "batch_rows": 64, "sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    )


def _body(start: int, stop: int) -> bytes:
    return b"".join(b"%d,r%d\n" % (i, i) for i in range(start, stop))


def _ingest(root: Path, data: bytes, chunk: int, monkeypatch, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "t.csv").write_bytes(data)
    monkeypatch.setattr(csv_mod, "CSV_CHUNK_BYTES", chunk)
    run_ingest(_params(kw.pop("key", "id")), root, root / "out", **kw)
    return root / "out"


@pytest.mark.parametrize("on_error", ["skip", "fail"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_quoted_line_break_is_refused_at_its_line(tmp_path, monkeypatch, chunk, on_error):
    # line 1 header, lines 2..ROWS+1 rows, the record with the line break starts at ROWS+2;
    # at chunk 307 the cut fell inside the quotes: 25 rows vanished, 1 counted (exit 0)
    data = b"id,x\n" + _body(0, ROWS) + b'8000,"he\nllo,9\n"\n' + _body(8001, 8100)
    with pytest.raises(DatasetError) as err:
        _ingest(tmp_path, data, chunk, monkeypatch, on_error=on_error)
    assert str(err.value) == (
        f"t.csv: line {ROWS + 2}: a quoted value goes on past the end of the line; "
        "values holding line breaks are not supported (replace them, e.g. by \\n)"
    )


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_lone_carriage_return_is_refused_at_its_line(tmp_path, monkeypatch, chunk):
    # Arrow ends a row at a lone CR, the line count does not: labels after it were shifted
    data = b"id,x\n" + _body(0, ROWS).replace(b"\n5000,", b"\r5000,")
    with pytest.raises(DatasetError, match=r"^t\.csv: line 5001: a carriage return not followed"):
        _ingest(tmp_path, data, chunk, monkeypatch, key=None, on_error="skip")


def test_a_header_ended_by_a_lone_carriage_return_is_refused(tmp_path, monkeypatch):
    # the header was read up to the CR, the data from after the first \n: row "1,a" was dropped
    with pytest.raises(DatasetError, match=r"^t\.csv: line 1: a carriage return not followed"):
        _ingest(tmp_path, b"id,x\r1,a\n2,b\n", 1 << 20, monkeypatch, on_error="skip")
    with pytest.raises(DatasetError, match=r"^t\.csv: line 1: a carriage return not followed"):
        _ingest(tmp_path / "cr", b"id,x\r1,a\r2,b\r", 1 << 20, monkeypatch)


def _tricky() -> bytes:
    """Records that are one line each: CRLF ends, blank lines, a CR and delimiters
    inside quotes, doubled quotes, a stray quote inside an unquoted value, no final newline."""
    lines = [b"id,x"] + [b"%d,r%d" % (i, i) for i in range(ROWS)]
    lines[100] = b'99,"a\rb"'
    lines[2000] = b""
    lines[2001] = b""
    lines[3000] = b'2999,"c,""d"""'
    lines[4000] = b'3999,5" pipe'
    return b"\r\n".join(lines)


@pytest.mark.parametrize("key", ["id", None])
def test_one_line_records_read_the_same_at_every_chunk_size_and_through_the_join(
    tmp_path, monkeypatch, key
):
    data = _tricky()
    outs = [_ingest(tmp_path / f"c{chunk}", data, chunk, monkeypatch, key=key) for chunk in CHUNKS]
    monkeypatch.setattr(ingest_mod, "stream_one", lambda *a, **k: None)  # the general join
    outs.append(_ingest(tmp_path / "join", data, 1 << 20, monkeypatch, key=key))
    assert all(snapshot_bytes(o) == snapshot_bytes(outs[0]) for o in outs)
    assert len({(o / "manifest.json").read_bytes() for o in outs}) == 1
    rows = read_snapshot(outs[0]).to_pylist()
    assert len(rows) == ROWS - 2
    by_id = {r["id"]: r for r in rows}
    assert by_id["99"]["x"] == "a\rb" and by_id["99"]["__row.t"] == "line 101"
    assert by_id["2999"]["x"] == 'c,"d"' and by_id["2999"]["__row.t"] == "line 3001"
    assert by_id["3999"]["x"] == '5" pipe' and by_id["3999"]["__row.t"] == "line 4001"
    assert by_id[str(ROWS - 1)]["__row.t"] == f"line {ROWS + 1}"
    if key is None:  # keyless keys: the record index, blank lines not counted
        assert by_id[str(ROWS - 1)]["key"] == f"t:{ROWS - 3}"
    counts = json.loads((outs[0] / "manifest.json").read_text())["counts"]["sources"]["t"]
    assert counts == {"rows_joined": ROWS - 2, "rows_read": ROWS - 2, "rows_skipped": {}}


@pytest.mark.parametrize("chunk", [7, 1 << 20])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "join"])
def test_bad_rows_after_the_last_good_row_are_counted_as_examples(
    tmp_path, monkeypatch, chunk, stream
):
    # at chunk 7 the last chunk holds only the malformed line: its example went uncounted
    # (examples read 4 while the source read 5)
    data = b"1,a\n2,b\n2,again\n3,c\n4,x,y\n"
    if not stream:
        monkeypatch.setattr(ingest_mod, "stream_one", lambda *a, **k: None)
    root = tmp_path
    _ingest_headerless(root, data, monkeypatch, chunk, on_error="skip")
    counts = json.loads((root / "out" / "manifest.json").read_text())["counts"]
    assert counts == {
        "examples": {
            "read": 5,
            "skipped": {"duplicate_key": 1, "malformed_row": 1},
            "written": 3,
        },
        "sources": {
            "t": {
                "rows_joined": 3,
                "rows_read": 5,
                "rows_skipped": {"duplicate_key": 1, "malformed_row": 1},
            }
        },
    }


def test_line_breaks_that_cancel_out_in_the_row_count_are_still_found(tmp_path, monkeypatch):
    # "\r\r\n" (two line ends Arrow skips, one line counted) and "3,a\rb" (two rows, one line):
    # the counts agreed, the labels after them were shifted
    data = b'\r\r\n1,v\r\n2,"a\rb"\r\n3,a\rb\r\n104,v4\r\n'
    with pytest.raises(DatasetError, match=r"^t\.csv: line 1: a carriage return not followed"):
        _ingest_headerless(tmp_path, data, monkeypatch, on_error="skip")


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_under_fail_the_first_problem_in_the_file_is_the_error(tmp_path, monkeypatch, chunk):
    # a malformed row on line 3 comes before the lone CR on line 5, at every chunk size
    data = b"1,a\n2,b\n3,c,d\n4,e\n5,f\rg\n"
    with pytest.raises(DatasetError, match=r"^t\.csv: line 3: expected 2 columns, got 3"):
        _ingest_headerless(tmp_path, data, monkeypatch, chunk=chunk)


def _ingest_headerless(root: Path, data: bytes, monkeypatch, chunk: int = 1 << 20, **kw) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "t.csv").write_bytes(data)
    monkeypatch.setattr(csv_mod, "CSV_CHUNK_BYTES", chunk)
    params = IngestParams.model_validate(
        {
            "key": "id",
            "batch_rows": 64,
            "sources": [
                {
                    "name": "t",
                    "format": "csv",
                    "path": "t.csv",
                    "header": False,
                    "column_names": ["id", "x"],
                }
            ],
        }
    )
    run_ingest(params, root, root / "out", **kw)


@pytest.mark.parametrize("chunk", [7, 1 << 20])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1,a\n2,b\n,c\n4,d,e\n", r"^t\.csv: line 3: key column 'id' is empty"),
        (b'1,a\n2,b\n,c\n4,"d\ne"\n5,f\n', r"^t\.csv: line 3: key column 'id' is empty"),
        (b'1,a\n2,"b\nc"\n,c\n4,d,e\n', r"^t\.csv: line 2: a quoted value goes on past"),
    ],
    ids=["empty-key-then-malformed", "empty-key-then-line-break", "line-break-then-rest"],
)
def test_under_fail_an_empty_key_before_a_bad_line_is_the_error(
    tmp_path, monkeypatch, chunk, data, message
):
    # read whole, Arrow stopped at the malformed line before the empty key was looked at
    with pytest.raises(DatasetError, match=message):
        _ingest_headerless(tmp_path, data, monkeypatch, chunk=chunk)
