"""Ingest: every source format, the key join, bounded-memory partitioning, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataops.config import IngestParams
from dataops.errors import DatasetError
from dataops.stages.ingest import read_manifest, run_ingest
from tests.support.records import (
    N,
    folder_bytes,
    make_sources,
    png_bytes,
    read_snapshot,
    snapshot_bytes,
    snapshot_parts,
)


def test_every_format_joins_on_the_key(tmp_path):
    params = IngestParams.model_validate(make_sources(tmp_path))
    result = run_ingest(params, tmp_path, tmp_path / "snap")
    assert result.num_rows == N and result.skipped == {}
    t = read_snapshot(tmp_path / "snap")
    assert t.column("id").to_pylist() == [str(i) for i in range(N)]  # the primary's order
    assert t.column("score").to_pylist()[3] is None and t.column("score").to_pylist()[4] == "6.0"
    assert t.column("pic").to_pylist()[5] == (tmp_path / "raw" / "pics" / "p5.png").read_bytes()
    assert t.column("vec").to_pylist()[2] == [2.0, 2.5, -2.0]
    assert t.column("text").to_pylist()[7] == "Héllo  Wörld 7"
    assert t.column("seq").to_pylist()[3] == [0, 1, 2]
    assert t.column("arr").to_pylist()[1] == [4.0, 5.0, 6.0, 7.0]
    assert t.column("counts").to_pylist()[11] == 77
    assert t.column("h5val").to_pylist()[-1] == 1.0
    assert t.column("label").to_pylist()[:2] == ["dog", "cat"]
    assert (
        t.column("image").to_pylist()[0]
        == (tmp_path / "raw" / "folder" / "dog" / "0.png").read_bytes()
    )
    manifest = read_manifest(tmp_path / "snap").to_json()
    assert manifest["shapes"] == {"arr": [2, 2]}
    assert manifest["columns"]["vec"] == "pq"
    files = manifest["sources"]["folder"]["files"]
    assert len(files) == N and all(len(h) == 64 for h in files.values())
    assert "raw/folder/cat/1.png" in files  # relative paths only


def test_partitioned_join_gives_the_same_rows(tmp_path):
    spec = make_sources(tmp_path)
    run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "one")
    run_ingest(
        IngestParams.model_validate({**spec, "partition_bytes": 1024}), tmp_path, tmp_path / "many"
    )
    # the joined partitions are merged back into the first source's order: same bytes
    one = snapshot_bytes(tmp_path / "one")
    assert snapshot_bytes(tmp_path / "many") == one
    assert read_manifest(tmp_path / "many").counts == read_manifest(tmp_path / "one").counts


def test_output_is_deterministic(tmp_path):
    spec = make_sources(tmp_path)
    for out in ("a", "b"):
        run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / out)
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")
    assert str(tmp_path) not in (tmp_path / "a" / "manifest.json").read_text()


def _two_sources(tmp_path: Path, csv_rows: list[str], jsonl: list[dict]) -> IngestParams:
    (tmp_path / "a.csv").write_text("\n".join(["id,x", *csv_rows]) + "\n")
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in jsonl))
    return IngestParams.model_validate(
        {
            "sources": [
                {"name": "a", "format": "csv", "path": "a.csv"},
                {"name": "b", "format": "jsonl", "path": "b.jsonl"},
            ],
        }
    )


def test_missing_key_fails_naming_source_and_row(tmp_path):
    params = _two_sources(
        tmp_path, ["1,a", "2,b", "3,c"], [{"id": 1, "t": "x"}, {"id": 3, "t": "z"}]
    )
    with pytest.raises(DatasetError) as err:
        run_ingest(params, tmp_path, tmp_path / "out")
    assert "source 'b' (b.jsonl) has no row for key '2' (a.csv: line 3)" in str(err.value)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("out.incomplete-*"))


def test_missing_key_skipped_and_counted(tmp_path):
    params = _two_sources(
        tmp_path,
        ["1,a", "2,b", "3,c"],
        [{"id": 1, "t": "x"}, {"id": 3, "t": "z"}, {"id": 9, "t": "?"}],
    )
    result = run_ingest(params, tmp_path, tmp_path / "out", on_error="skip")
    assert result.num_rows == 2
    assert result.skipped == {"missing_in_a": 1, "missing_in_b": 1}
    assert read_manifest(tmp_path / "out").skipped == result.skipped


def test_malformed_csv_row_and_bad_json_line(tmp_path):
    params = _two_sources(tmp_path, ["1,a", "2,b,extra", "3,c"], [{"id": 1}, {"id": 2}, {"id": 3}])
    with pytest.raises(DatasetError, match=r"a.csv: line 3: expected 2 columns, got 3"):
        run_ingest(params, tmp_path, tmp_path / "out")
    result = run_ingest(params, tmp_path, tmp_path / "out", on_error="skip")
    # the bad row's key (2) is read from its text: the example is counted once, as malformed
    assert result.skipped == {"malformed_row": 1}
    counts = read_manifest(tmp_path / "out").to_json()["counts"]
    assert counts["examples"] == {"read": 3, "written": 2, "skipped": {"malformed_row": 1}}
    assert counts["sources"] == {
        "a": {"rows_read": 3, "rows_joined": 2, "rows_skipped": {"malformed_row": 1}},
        "b": {"rows_read": 3, "rows_joined": 2, "rows_skipped": {"bad_in_a": 1}},
    }
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n{"id": 2\n{"id": 3}\n')
    with pytest.raises(DatasetError, match=r"b.jsonl: line 2: not valid JSON"):
        run_ingest(
            IngestParams.model_validate(
                {"sources": [{"name": "b", "format": "jsonl", "path": "b.jsonl"}]}
            ),
            tmp_path,
            tmp_path / "out",
        )


def test_duplicate_keys_are_an_error(tmp_path):
    params = _two_sources(tmp_path, ["1,a", "1,b"], [{"id": 1}])
    with pytest.raises(DatasetError) as err:
        run_ingest(params, tmp_path, tmp_path / "out")
    assert str(err.value).startswith(
        "a.csv: line 3: key '1' repeats line 2 (key column 'id' must be unique;"
    )


def test_missing_image_file_names_the_row(tmp_path):
    (tmp_path / "a.csv").write_text("id,pic\n1,nope.png\n")
    params = IngestParams.model_validate(
        {"sources": [{"name": "a", "format": "csv", "path": "a.csv", "image_columns": ["pic"]}]}
    )
    with pytest.raises(DatasetError, match=r"a.csv: line 2: image file 'nope.png' cannot be read"):
        run_ingest(params, tmp_path, tmp_path / "out")


def test_image_folder_counts_the_files_it_does_not_read(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "1.png").write_bytes(png_bytes(1))
    # read: Pillow decodes TIFF (and PNG bytes)
    (folder / "cat" / "1.tiff").write_bytes(png_bytes(2))
    (folder / "cat" / "notes.txt").write_text("not an image")
    (folder / "README").write_text("outside any class folder")
    spec = {"key": "id", "sources": [{"name": "i", "format": "image_folder", "path": "imgs"}]}
    with pytest.raises(Exception, match="duplicate|repeats"):  # 1.png and 1.tiff share key '1'
        run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "snap")
    (folder / "cat" / "1.tiff").rename(folder / "cat" / "2.tiff")
    run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "snap")
    manifest = read_manifest(tmp_path / "snap").to_json()
    assert manifest["sources"]["i"]["num_files"] == 2
    assert manifest["sources"]["i"]["ignored_files"] == {
        "count": 2,
        "first": ["README", "cat/notes.txt"],
    }


# --- one source: streamed, checked against the general join ---------------------------------


def _messy_csv(path: Path, rows: int = 3000) -> None:
    """Blank lines, a CR-only line, a short row with a readable key, an empty key, quoting."""
    lines = ["id,x,name"] + [f"{i},{i * 0.25},n{i % 7}" for i in range(rows)]
    lines[10] = ""
    lines[300] = "99999,1"
    lines[400] = ",2.0,x"
    lines[500] = "\r"
    lines[600] = '"q,1",0.5,"a ""b"""'
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("key", ["id", None])
@pytest.mark.parametrize("batch_rows", [7, 4096])
def test_one_source_streamed_gives_the_general_joins_bytes(tmp_path, key, batch_rows):
    from dataops.stages.join import join_all
    from dataops.stages.sources.paths import resolve_source
    from dataops.stages.stream import stream_one

    _messy_csv(tmp_path / "t.csv")
    params = IngestParams.model_validate(
        {
            "key": key,
            "batch_rows": batch_rows,
            "sources": [{"name": "t", "format": "csv", "path": "t.csv"}],
        }
    )
    src = resolve_source(params, tmp_path, 0)
    for out in ("s.out", "j.out"):
        (tmp_path / out).mkdir()
    streamed = stream_one(src, params, "skip", tmp_path / "s.out", tmp_path / "s", None)
    joined = join_all([src], params, "skip", tmp_path / "j.out", tmp_path / "j", None)
    assert streamed is not None  # no key repeats: the streamed path kept its result
    assert snapshot_bytes(tmp_path / "s.out") == snapshot_bytes(tmp_path / "j.out")
    assert streamed.acct.report() == joined.acct.report()
    expected = {"malformed_row": 1, "missing_key": 1} if key else {"malformed_row": 1}
    assert streamed.acct.report()["examples"]["skipped"] == expected
    part = snapshot_parts(tmp_path / "s.out")[0]
    assert pq.ParquetFile(part).metadata.row_group(0).num_rows == min(batch_rows, streamed.num_rows)


def test_repeated_key_in_a_big_source_falls_back_to_the_join(tmp_path, monkeypatch):
    """Key hashes spilled to disk (a tiny buffer): a repeat far apart is found by the check of
    the spill files; the join then keeps the first row and counts the other."""
    import dataops.stages.stream as stream

    monkeypatch.setattr(stream, "_KEY_BUFFER", 256)  # spilled every 32 keys
    rows = [f"{i},{i}" for i in range(2000)] + ["5,dup"]
    (tmp_path / "t.csv").write_text("\n".join(["id,v", *rows]) + "\n")
    spec = {"sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    with pytest.raises(DatasetError, match=r"t.csv: line 2002: key '5' repeats line 7"):
        run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "out")
    result = run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "out", "skip")
    assert (result.num_rows, result.skipped) == (2000, {"duplicate_key": 1})
    t = read_snapshot(tmp_path / "out")
    assert t.column("v").to_pylist()[5] == "5"


def test_a_hash_collision_only_costs_time(tmp_path, monkeypatch):
    """Every key hashed alike: the streamed path sees repeats that are not there, gives up, and
    the join writes what it would have written."""
    import numpy as np

    import dataops.stages.stream as stream

    _messy_csv(tmp_path / "t.csv", rows=700)
    spec = {"sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "a", "skip")
    monkeypatch.setattr(stream, "key_hash", lambda keys: np.zeros(len(keys), np.uint64))
    run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "b", "skip")
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")


def test_an_error_in_the_writer_thread_reaches_the_caller(tmp_path):
    from dataops.stages.stream import Background

    seen = []

    def write(item: int) -> None:
        if item == 2:
            raise OSError(28, "No space left on device", "snapshot.parquet")
        seen.append(item)

    with pytest.raises(OSError, match="No space left on device"), Background(write) as w:
        for i in range(100):
            w.put(i)
    assert seen == [0, 1]
    assert not any(t.name == "dataops-ingest-write" for t in __import__("threading").enumerate())


def test_csv_batches_with_image_columns_stay_at_batch_rows(tmp_path):
    """A CSV batch is a whole 8 MiB chunk, except with image columns: every row loads a file,
    so batch_rows bounds the batch (and the memory)."""
    from dataops.stages.sources import read_source
    from dataops.stages.sources.base import RowErrors
    from dataops.stages.sources.paths import resolve_source

    (tmp_path / "p.png").write_bytes(png_bytes(7))
    (tmp_path / "t.csv").write_text("id,pic\n" + "".join(f"{i},p.png\n" for i in range(50)))
    for columns, sizes in (([], [50]), (["pic"], [16, 16, 16, 2])):
        params = IngestParams.model_validate(
            {
                "batch_rows": 16,
                "sources": [
                    {"name": "t", "format": "csv", "path": "t.csv", "image_columns": columns}
                ],
            }
        )
        src = resolve_source(params, tmp_path, 0)
        batches = list(read_source(src, params.batch_rows, RowErrors("fail")))
        assert [b.table.num_rows for b in batches] == sizes
        assert batches[-1].rows.to_pylist()[-1] == "line 51"
