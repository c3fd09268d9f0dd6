"""Counts reconcile (per source and per example), duplicate keys under skip, keyless sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dataops.config import IngestParams
from dataops.errors import DatasetError
from dataops.stages.ingest import read_manifest, run_ingest
from tests.support.records import read_snapshot, snapshot_bytes, snapshot_parts


def run(root: Path, sources: list[dict], on_error: str = "skip", **keys) -> tuple:
    params = IngestParams.model_validate({"sources": sources, **keys})
    result = run_ingest(params, root, root / "out", on_error=on_error)
    table = read_snapshot(root / "out")
    return result, table, read_manifest(root / "out").to_json()


def three_sources(root: Path, n: int, short_row: int | None = None) -> list[dict]:
    lines = ["id,w"]
    for i in range(n):
        lines.append(f"{i}" if i == short_row else f"{i},{i * 2}")
    (root / "a.csv").write_text("\n".join(lines) + "\n")
    (root / "b.jsonl").write_text(
        "".join(json.dumps({"id": i, "t": f"t{i}"}) + "\n" for i in range(n))
    )
    np.savez(root / "c.npz", id=np.arange(n), v=np.arange(n) * 3)
    return [
        {"name": "a", "format": "csv", "path": "a.csv"},
        {"name": "b", "format": "jsonl", "path": "b.jsonl"},
        {"name": "c", "format": "npz", "path": "c.npz"},
    ]


def assert_reconciles(manifest: dict) -> None:
    counts = manifest["counts"]
    ex = counts["examples"]
    assert ex["read"] == ex["written"] + sum(ex["skipped"].values())
    assert ex["written"] == manifest["num_rows"] and ex["skipped"] == manifest["skipped"]
    for c in counts["sources"].values():
        assert c["rows_read"] == c["rows_joined"] + sum(c["rows_skipped"].values())


def test_one_short_csv_row_is_counted_once(tmp_path):
    """Issue 12: 400 rows with one short row gave 399 examples and 402 skips."""
    result, table, manifest = run(tmp_path, three_sources(tmp_path, 400, short_row=7))
    assert result.num_rows == 399 and "7" not in table.column("id").to_pylist()
    assert manifest["counts"] == {
        "examples": {"read": 400, "written": 399, "skipped": {"malformed_row": 1}},
        "sources": {
            "a": {"rows_read": 400, "rows_joined": 399, "rows_skipped": {"malformed_row": 1}},
            "b": {"rows_read": 400, "rows_joined": 399, "rows_skipped": {"bad_in_a": 1}},
            "c": {"rows_read": 400, "rows_joined": 399, "rows_skipped": {"bad_in_a": 1}},
        },
    }
    assert_reconciles(manifest)


def test_counts_are_the_same_when_partitioned(tmp_path):
    sources = three_sources(tmp_path, 300, short_row=5)
    _, one, m1 = run(tmp_path, sources)
    _, many, m2 = run(tmp_path, sources, partition_bytes=1024)
    assert one.equals(many) and m1["counts"] == m2["counts"]


def test_unkeyable_bad_row_and_missing_rows(tmp_path):
    (tmp_path / "a.csv").write_text("id,w\n1,x\n2,y\n3,z\n")
    # line 2 is not JSON (its key cannot be read); key 9 is only in b; key 3 is missing in b
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n{"id": 2\n{"id": 9}\n')
    sources = [
        {"name": "a", "format": "csv", "path": "a.csv"},
        {"name": "b", "format": "jsonl", "path": "b.jsonl"},
    ]
    result, table, manifest = run(tmp_path, sources)
    assert table.column("id").to_pylist() == ["1"]
    # key 2 is counted as missing in b as well: the bad line's key cannot be known
    assert manifest["counts"] == {
        "examples": {
            "read": 5,
            "written": 1,
            "skipped": {"malformed_row": 1, "missing_in_a": 1, "missing_in_b": 2},
        },
        "sources": {
            "a": {"rows_read": 3, "rows_joined": 1, "rows_skipped": {"missing_in_b": 2}},
            "b": {
                "rows_read": 3,
                "rows_joined": 1,
                "rows_skipped": {"malformed_row": 1, "missing_in_a": 1},
            },
        },
    }
    assert_reconciles(manifest)


def test_missing_in_primary_fails_naming_both_files(tmp_path):
    (tmp_path / "a.csv").write_text("id,w\n1,x\n")
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n{"id": 9}\n')
    params = IngestParams.model_validate(
        {
            "sources": [
                {"name": "a", "format": "csv", "path": "a.csv"},
                {"name": "b", "format": "jsonl", "path": "b.jsonl"},
            ]
        }
    )
    with pytest.raises(DatasetError) as err:
        run_ingest(params, tmp_path, tmp_path / "out")
    assert str(err.value) == (
        "source 'a' (a.csv) has no row for key '9' (b.jsonl: line 2) "
        "(set dataset.on_error: skip to drop such rows and count them)"
    )


def test_duplicate_keys_under_skip_keep_the_first(tmp_path):
    (tmp_path / "a.csv").write_text("id,w\n1,first\n2,x\n1,second\n1,third\n")
    (tmp_path / "b.jsonl").write_text(
        '{"id": 2, "t": "b2"}\n{"id": 1, "t": "b1"}\n{"id": 2, "t": "again"}\n'
    )
    sources = [
        {"name": "a", "format": "csv", "path": "a.csv"},
        {"name": "b", "format": "jsonl", "path": "b.jsonl"},
    ]
    for partition_bytes in (256 << 20, 1024):
        result, table, manifest = run(tmp_path, sources, partition_bytes=partition_bytes)
        assert table.column("id").to_pylist() == ["1", "2"]
        assert table.column("w").to_pylist() == ["first", "x"]
        assert table.column("t").to_pylist() == ["b1", "b2"]
        assert table.column("__row.a").to_pylist() == ["line 2", "line 3"]
        assert manifest["counts"] == {
            "examples": {"read": 5, "written": 2, "skipped": {"duplicate_key": 3}},
            "sources": {
                "a": {"rows_read": 4, "rows_joined": 2, "rows_skipped": {"duplicate_key": 2}},
                "b": {"rows_read": 3, "rows_joined": 2, "rows_skipped": {"duplicate_key": 1}},
            },
        }


def test_keyless_csv_keys_are_stable_when_rows_are_appended(tmp_path):
    (tmp_path / "t.csv").write_text("x,y\n10,a\n20,b\n")
    src = [{"name": "t", "format": "csv", "path": "t.csv"}]
    _, first, manifest = run(tmp_path, src, on_error="fail", key=None)
    assert first.column_names == ["key", "x", "y", "__row.t"]
    assert first.column("key").to_pylist() == ["t:0", "t:1"]
    assert manifest["key"] == "key" and manifest["params"]["key"] is None
    (part,) = snapshot_parts(tmp_path / "out")
    assert pq.read_schema(part).metadata[b"dataops.key"] == b"key"
    with open(tmp_path / "t.csv", "a") as f:
        f.write("30,c\n")
    _, second, _ = run(tmp_path, src, on_error="fail", key=None)
    assert second.column("key").to_pylist() == ["t:0", "t:1", "t:2"]


def test_keyless_sources_are_matched_by_record_index(tmp_path):
    # a bad record keeps its index: row 2 of each source stays aligned
    (tmp_path / "a.csv").write_text("x\n10\n20,oops\n30\n")
    (tmp_path / "b.jsonl").write_text('{"t": "p"}\n\n{"t": "q"}\n{"t": "r"}\n')
    sources = [
        {"name": "a", "format": "csv", "path": "a.csv"},
        {"name": "b", "format": "jsonl", "path": "b.jsonl"},
    ]
    _, table, manifest = run(tmp_path, sources, key=None)
    assert table.column("key").to_pylist() == ["a:0", "a:2"]
    assert table.column("x").to_pylist() == ["10", "30"]
    assert table.column("t").to_pylist() == ["p", "r"]
    assert manifest["counts"]["examples"] == {
        "read": 3,
        "written": 2,
        "skipped": {"malformed_row": 1},
    }
    assert_reconciles(manifest)


def test_keyless_data_column_named_key_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("key,x\n1,2\n")
    with pytest.raises(DatasetError, match="column 'key' has the name of the key"):
        run(tmp_path, [{"name": "t", "format": "csv", "path": "t.csv"}], key=None)


def test_keyless_image_folder_is_a_config_error():
    with pytest.raises(ValueError, match="image_folder cannot be keyless"):
        IngestParams.model_validate(
            {"key": None, "sources": [{"name": "i", "format": "image_folder", "path": "x"}]}
        )


def test_large_partitions_are_split_again_with_the_same_result(tmp_path, monkeypatch):
    import dataops.stages.join as join

    sources = three_sources(tmp_path, 500, short_row=11)
    run(tmp_path, sources)
    whole = snapshot_bytes(tmp_path / "out")
    m1 = read_manifest(tmp_path / "out").to_json()
    monkeypatch.setattr(join, "_MIN_SPLIT_BYTES", 0)  # split every partition over 8 KiB
    run(tmp_path, sources, partition_bytes=8 << 10)
    assert snapshot_bytes(tmp_path / "out") == whole
    assert read_manifest(tmp_path / "out").to_json()["counts"] == m1["counts"]


def test_unreadable_image_is_counted_once_with_its_key(tmp_path):
    (tmp_path / "p.png").write_bytes(b"png")
    (tmp_path / "a.csv").write_text("id,pic\n1,p.png\n2,gone.png\n3,p.png\n")
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in (1, 2, 3)))
    sources = [
        {"name": "a", "format": "csv", "path": "a.csv", "image_columns": ["pic"]},
        {"name": "b", "format": "jsonl", "path": "b.jsonl"},
    ]
    _, table, manifest = run(tmp_path, sources)
    assert table.column("id").to_pylist() == ["1", "3"]
    assert manifest["counts"] == {
        "examples": {"read": 3, "written": 2, "skipped": {"unreadable_image": 1}},
        "sources": {
            "a": {"rows_read": 3, "rows_joined": 2, "rows_skipped": {"unreadable_image": 1}},
            "b": {"rows_read": 3, "rows_joined": 2, "rows_skipped": {"bad_in_a": 1}},
        },
    }


def test_memory_path_moves_to_disk_when_arrow_outgrows_the_input(tmp_path):
    sources = three_sources(tmp_path, 300, short_row=3)
    run(tmp_path, sources)
    whole = snapshot_bytes(tmp_path / "out")
    m1 = read_manifest(tmp_path / "out").to_json()
    # one partition by input bytes, but the Arrow tables outgrow it: they move to disk
    total = sum((tmp_path / n).stat().st_size for n in ("a.csv", "b.jsonl", "c.npz"))
    _, _, m2 = run(tmp_path, sources, partition_bytes=total + 1)
    assert snapshot_bytes(tmp_path / "out") == whole
    assert m2["counts"] == m1["counts"]
