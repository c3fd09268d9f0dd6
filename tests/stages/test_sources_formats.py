"""Sources read exactly: CSV dialects and encodings, JSON types from the whole file, JSON
arrays, edge numbers. Each case asserts the exact stored values or the exact message."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from dataops.config import IngestParams
from dataops.errors import ConfigError, DatasetError
from dataops.stages.ingest import read_manifest, run_ingest
from tests.support.project import run_cli, small_params_data
from tests.support.records import read_snapshot

SKIP_HINT = " (set dataset.on_error: skip to drop such rows and count them)"


def ingest(root: Path, sources: list[dict], on_error: str = "fail", **ingest_keys) -> pa.Table:
    params = IngestParams.model_validate({"sources": sources, **ingest_keys})
    run_ingest(params, root, root / "out", on_error=on_error)
    return read_snapshot(root / "out")


def message(root: Path, sources: list[dict], on_error: str = "fail", **ingest_keys) -> str:
    with pytest.raises(DatasetError) as err:
        ingest(root, sources, on_error, **ingest_keys)
    return str(err.value)


# --- CSV ---------------------------------------------------------------------------------------


def test_bom_csv_keeps_leading_zero_keys_as_text(tmp_path):
    (tmp_path / "z.csv").write_bytes(b"\xef\xbb\xbfid,zip\n0000,02100\n0001,00501\n")
    t = ingest(tmp_path, [{"name": "z", "format": "csv", "path": "z.csv"}])
    assert t.column_names == ["id", "zip", "__row.z"]
    assert t.column("id").to_pylist() == ["0000", "0001"]
    assert t.column("zip").to_pylist() == ["02100", "00501"]


def test_semicolon_csv_with_quotes_and_decimal_commas(tmp_path):
    (tmp_path / "s.csv").write_text('id;name;v\n1;"a;b";2,5\n2;"say ""hi""";-0,0\n')
    t = ingest(tmp_path, [{"name": "s", "format": "csv", "path": "s.csv", "delimiter": ";"}])
    assert t.column("name").to_pylist() == ["a;b", 'say "hi"']
    assert t.column("v").to_pylist() == ["2,5", "-0,0"]


def test_csv_without_header_and_custom_quote(tmp_path):
    (tmp_path / "h.csv").write_text("1|'x|y'\n2|z\n")
    t = ingest(
        tmp_path,
        [
            {
                "name": "h",
                "format": "csv",
                "path": "h.csv",
                "delimiter": "|",
                "quote_char": "'",
                "header": False,
                "column_names": ["id", "v"],
            }
        ],
    )
    assert t.column("v").to_pylist() == ["x|y", "z"]
    assert t.column("__row.h").to_pylist() == ["line 1", "line 2"]


def test_latin1_csv_declared_and_undeclared(tmp_path):
    data = "id,city\n1,München\n2,Zürich\n".encode("latin-1")
    (tmp_path / "c.csv").write_bytes(data)
    src = {"name": "c", "format": "csv", "path": "c.csv"}
    t = ingest(tmp_path, [{**src, "encoding": "latin-1"}])
    assert t.column("city").to_pylist() == ["München", "Zürich"]
    offset = data.index(b"\xfc")
    assert message(tmp_path, [src]) == (
        f"c.csv: byte {offset} (line 2) is not valid utf-8 (0xfc); "
        "set ingest.sources.0.encoding to the file's encoding, e.g. latin-1"
    )


def test_non_utf8_header_and_jsonl_are_one_line_errors(tmp_path):
    (tmp_path / "h.csv").write_bytes(b"id,caf\xe9\n1,x\n")
    assert message(tmp_path, [{"name": "h", "format": "csv", "path": "h.csv"}]) == (
        "h.csv: byte 6 (line 1) is not valid utf-8 (0xe9); "
        "set ingest.sources.0.encoding to the file's encoding, e.g. latin-1"
    )
    lines = b'{"id": 1, "t": "ok"}\n{"id": 2, "t": "caf\xe9"}\n'
    (tmp_path / "l.jsonl").write_bytes(lines)
    offset = lines.index(b"\xe9")
    assert message(tmp_path, [{"name": "l", "format": "jsonl", "path": "l.jsonl"}]) == (
        f"l.jsonl: byte {offset} (line 2) is not valid utf-8 (0xe9); "
        "set ingest.sources.0.encoding to the file's encoding, e.g. latin-1"
    )


def test_non_utf8_through_the_cli_is_one_line_exit_1(tmp_path):
    (tmp_path / "c.csv").write_bytes(b"id,v\n1,\xff\n")
    params = small_params_data(
        ingest={"sources": [{"name": "c", "format": "csv", "path": "c.csv"}]}
    )
    (tmp_path / "p.yaml").write_text(json.dumps(params))
    r = run_cli("ingest", "--params", "p.yaml", "--out", "snap", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: c.csv: byte 7 (line 2) is not valid utf-8 (0xff); "
        "set ingest.sources.0.encoding to the file's encoding, e.g. latin-1"
    )


def test_csv_text_is_kept_exactly_and_na_tokens_are_opt_in(tmp_path):
    (tmp_path / "n.csv").write_text("id,x,c\n1,1e308,NA\n2,-0.0,\n3,NaN,null\n")
    src = {"name": "n", "format": "csv", "path": "n.csv"}
    t = ingest(tmp_path, [src])
    assert t.column("x").to_pylist() == ["1e308", "-0.0", "NaN"]
    assert t.column("c").to_pylist() == ["NA", None, "null"]
    t = ingest(tmp_path, [{**src, "null_values": ["", "NA", "NaN"]}])
    assert t.column("x").to_pylist() == ["1e308", "-0.0", None]
    assert t.column("c").to_pylist() == [None, None, "null"]


def test_blank_lines_keep_line_numbers_exact(tmp_path):
    (tmp_path / "b.csv").write_text("id,x\n1,a\n\n2,b,extra\n3,c\n")
    params = [{"name": "b", "format": "csv", "path": "b.csv"}]
    assert message(tmp_path, params) == "b.csv: line 4: expected 2 columns, got 3" + SKIP_HINT
    t = ingest(tmp_path, params, on_error="skip")
    assert t.column("__row.b").to_pylist() == ["line 2", "line 5"]


def test_repeated_header_name_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text("id,x,x\n1,2,3\n")
    assert message(tmp_path, [{"name": "d", "format": "csv", "path": "d.csv"}]) == (
        "d.csv: line 1: the header repeats column names ['x']"
    )


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"header": False}, "'header: false' needs 'column_names'"),
        ({"column_names": ["a"]}, "'column_names' needs 'header: false'"),
        ({"delimiter": ";;"}, "must be one character other than a newline"),
        ({"encoding": "no-such-codec"}, "unknown encoding 'no-such-codec'"),
        ({"quote_char": ","}, "'quote_char' and 'delimiter' must differ"),
        ({"schema": {"x": "int64"}}, "'schema' applies to jsonl/json only"),
    ],
)
def test_bad_csv_options_are_config_errors(extra, error):
    with pytest.raises(ValueError, match=error):
        IngestParams.model_validate(
            {"sources": [{"name": "a", "format": "csv", "path": "a.csv", **extra}]}
        )


def test_csv_options_on_other_formats_are_config_errors():
    with pytest.raises(ValueError, match=r"\['delimiter'\] apply to format csv only"):
        IngestParams.model_validate(
            {"sources": [{"name": "a", "format": "jsonl", "path": "a", "delimiter": ";"}]}
        )


# --- JSON Lines: types from the whole file ------------------------------------------------------


def write_jsonl(path: Path, records: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_int_column_widens_to_float_after_the_first_batch(tmp_path):
    recs = [{"id": i, "x": 1} for i in range(10)] + [{"id": 10, "x": 2.5}]
    write_jsonl(tmp_path / "d.jsonl", recs)
    t = ingest(tmp_path, [{"name": "d", "format": "jsonl", "path": "d.jsonl"}], batch_rows=4)
    assert t.schema.field("x").type == pa.float64()
    assert t.column("x").to_pylist() == [1.0] * 10 + [2.5]


def test_null_only_prefix_then_strings_and_late_fields(tmp_path):
    recs = [{"id": i, "s": None} for i in range(5)] + [{"id": 5, "s": "a", "late": [1]}]
    write_jsonl(tmp_path / "n.jsonl", recs)
    t = ingest(tmp_path, [{"name": "n", "format": "jsonl", "path": "n.jsonl"}], batch_rows=2)
    assert t.schema.field("s").type == pa.string()
    assert t.column("s").to_pylist() == [None] * 5 + ["a"]
    assert t.column("late").to_pylist() == [None] * 5 + [[1]]


def test_all_null_column_stays_null_typed(tmp_path):
    write_jsonl(tmp_path / "n.jsonl", [{"id": 1, "e": None}, {"id": 2}])
    t = ingest(tmp_path, [{"name": "n", "format": "jsonl", "path": "n.jsonl"}])
    assert t.schema.field("e").type == pa.null()


def test_list_items_widen_too(tmp_path):
    write_jsonl(tmp_path / "l.jsonl", [{"id": 1, "v": [1, 2]}, {"id": 2, "v": [0.5]}])
    t = ingest(tmp_path, [{"name": "l", "format": "jsonl", "path": "l.jsonl"}])
    assert t.schema.field("v").type == pa.list_(pa.float64())
    assert t.column("v").to_pylist() == [[1.0, 2.0], [0.5]]


def test_integers_float64_cannot_hold_mixed_with_floats_are_an_error(tmp_path):
    write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "x": 2**53 + 1}, {"id": 2, "x": 0.5}])
    src = {"name": "b", "format": "jsonl", "path": "b.jsonl"}
    assert message(tmp_path, [src]) == (
        "b.jsonl: column 'x' mixes floats (first at line 2) with integers float64 cannot hold "
        "exactly (9007199254740993 at line 1); declare its type in ingest.sources.0.schema"
    )
    # declared float64: that integer is a bad row, counted
    t = ingest(tmp_path, [{**src, "schema": {"x": "float64"}}], on_error="skip")
    assert t.column("x").to_pylist() == [0.5]
    assert read_manifest(tmp_path / "out").skipped == {"wrong_type": 1}
    # 2**60 is a float64 exactly: allowed
    write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "x": 2**60}, {"id": 2, "x": 0.5}])
    assert ingest(tmp_path, [src]).column("x").to_pylist() == [2.0**60, 0.5]


def test_value_of_another_kind_is_a_bad_row_named_by_line(tmp_path):
    write_jsonl(tmp_path / "k.jsonl", [{"id": 1, "x": 1}, {"id": 2, "x": "a"}, {"id": 3, "x": 3}])
    src = {"name": "k", "format": "jsonl", "path": "k.jsonl"}
    assert message(tmp_path, [src]) == (
        "k.jsonl: line 2: column 'x': \"a\" is a string, the column is int64" + SKIP_HINT
    )
    t = ingest(tmp_path, [src], on_error="skip")
    assert t.column("x").to_pylist() == [1, 3]
    counts = read_manifest(tmp_path / "out").to_json()["counts"]
    assert counts["sources"]["k"] == {
        "rows_read": 3,
        "rows_joined": 2,
        "rows_skipped": {"wrong_type": 1},
    }


def test_declared_schema_never_narrows(tmp_path):
    write_jsonl(
        tmp_path / "s.jsonl", [{"id": 1, "n": 2}, {"id": 2, "n": 2.0}, {"id": 3, "n": True}]
    )
    src = {"name": "s", "format": "jsonl", "path": "s.jsonl", "schema": {"n": "int64"}}
    t = ingest(tmp_path, [src], on_error="skip")
    assert t.column("n").to_pylist() == [2]
    assert read_manifest(tmp_path / "out").skipped == {"wrong_type": 2}


def test_edge_numbers_in_json(tmp_path):
    (tmp_path / "e.jsonl").write_text(
        '{"id": 1, "x": 1e308}\n{"id": 2, "x": -0.0}\n{"id": 3, "x": NaN}\n'
        '{"id": 4, "x": 1e400}\n{"id": 5, "x": 9223372036854775808}\n{"id": 6, "x": "NaN"}\n'
    )
    src = {"name": "e", "format": "jsonl", "path": "e.jsonl"}
    assert message(tmp_path, [src]) == (
        "e.jsonl: line 4: column 'x': number 1e400 is out of float64 range" + SKIP_HINT
    )
    t = ingest(tmp_path, [src], on_error="skip")
    x = t.column("x").to_pylist()
    assert x[0] == 1e308 and x[1] == 0.0 and math.copysign(1, x[1]) == -1 and math.isnan(x[2])
    # 2**63 is a float64 exactly (the column is float64); 1e400 is not; the text "NaN" is a string
    assert x[3] == 2.0**63 and len(x) == 4
    assert t.column("id").to_pylist() == ["1", "2", "3", "5"]
    assert read_manifest(tmp_path / "out").skipped == {"wrong_type": 2}


def test_int64_overflow_in_an_int_column(tmp_path):
    write_jsonl(tmp_path / "o.jsonl", [{"id": 1, "x": 1}, {"id": 2, "x": 2**63}])
    assert message(tmp_path, [{"name": "o", "format": "jsonl", "path": "o.jsonl"}]) == (
        "o.jsonl: line 2: column 'x': integer 9223372036854775808 is out of int64 range" + SKIP_HINT
    )


# --- JSON arrays --------------------------------------------------------------------------------


def test_json_array_file(tmp_path):
    (tmp_path / "a.json").write_text(
        '[\n  {"id": 1, "v": [1, 2], "o": {"p": 1}},\n  {"id": 2, "v": [], "o": {"p": 2.5}}\n]\n'
    )
    t = ingest(tmp_path, [{"name": "a", "format": "json", "path": "a.json"}])
    assert t.column("id").to_pylist() == ["1", "2"]
    assert t.column("v").to_pylist() == [[1, 2], []]
    assert t.column("o").to_pylist() == [{"p": 1.0}, {"p": 2.5}]
    assert t.column("__row.a").to_pylist() == ["element 0 (line 2)", "element 1 (line 3)"]


def test_json_array_non_object_element_and_broken_files(tmp_path):
    src = {"name": "a", "format": "json", "path": "a.json"}
    (tmp_path / "a.json").write_text('[{"id": 1}, 7, {"id": 3}]')
    assert message(tmp_path, [src]) == (
        "a.json: element 1 (line 1): not a JSON object (an integer)" + SKIP_HINT
    )
    assert ingest(tmp_path, [src], on_error="skip").column("id").to_pylist() == ["1", "3"]
    (tmp_path / "a.json").write_text('[{"id": 1},\n{"id": 2')
    assert message(tmp_path, [src]) == "a.json: line 2: not valid JSON: Expecting ',' delimiter"
    (tmp_path / "a.json").write_text('{"id": 1}\n')
    assert message(tmp_path, [src]) == (
        "a.json: line 1: format json expects one top-level array of objects; use format jsonl for one object per line"
    )
    (tmp_path / "a.json").write_text('[{"id": 1}] [')
    assert message(tmp_path, [src]) == "a.json: line 1: text after the closing ']' of the array"


def test_json_array_elements_across_read_chunks(tmp_path):
    recs = [{"id": i, "t": "x" * 5000} for i in range(600)]  # ~3 MB: several 1 MiB chunks
    (tmp_path / "big.json").write_text(json.dumps(recs))
    t = ingest(tmp_path, [{"name": "b", "format": "json", "path": "big.json"}], batch_rows=100)
    assert t.column("id").to_pylist() == [str(i) for i in range(600)]
    assert set(t.column("t").to_pylist()) == {"x" * 5000}


def test_config_rejects_keyless_with_source_keys():
    with pytest.raises(ValueError, match="sets key 'k' but ingest.key is null"):
        IngestParams.model_validate(
            {"key": None, "sources": [{"name": "a", "format": "csv", "path": "a", "key": "k"}]}
        )


def test_missing_key_column_is_a_config_error(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(ConfigError, match=r"key column 'id' not in a.csv"):
        ingest(tmp_path, [{"name": "a", "format": "csv", "path": "a.csv"}])


def test_csv_read_in_small_chunks_keeps_lines_and_keys_exact(tmp_path, monkeypatch):
    import dataops.stages.sources.csv as csv_source

    monkeypatch.setattr(csv_source, "CSV_CHUNK_BYTES", 16)  # many chunks, cut at line ends
    lines = ["id,v"]
    for i in range(40):
        lines.append(f"{i},{'x' * (i % 7)}")
        if i % 9 == 4:
            lines.append("")  # blank: not a record
        if i % 11 == 5:
            lines.append(f"{100 + i},too,many")  # bad record
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    t = ingest(
        tmp_path, [{"name": "c", "format": "csv", "path": "c.csv"}], on_error="skip", key=None
    )
    good = [(n, line) for n, line in enumerate(lines[1:], start=2) if line and line.count(",") == 1]
    assert t.column("__row.c").to_pylist() == [f"line {n}" for n, _ in good]
    assert t.column("v").to_pylist() == [line.split(",")[1] or None for _, line in good]
    # keyless keys count records (bad ones too), not blank lines
    records = [line for line in lines[1:] if line]
    expected_keys = [f"c:{records.index(line)}" for _, line in good]
    assert t.column("key").to_pylist() == expected_keys
    assert read_manifest(tmp_path / "out").skipped == {"malformed_row": 4}


def test_utf16_csv_is_read_whole_by_arrow(tmp_path):
    (tmp_path / "u.csv").write_bytes("id,name\n1,Ωmega\n2,ß\n".encode("utf-16"))
    t = ingest(tmp_path, [{"name": "u", "format": "csv", "path": "u.csv", "encoding": "utf-16"}])
    assert t.column("name").to_pylist() == ["Ωmega", "ß"]
    assert t.column("__row.u").to_pylist() == ["line 2", "line 3"]


WIDE = "id,city\n1,München\n2,東京\n"


@pytest.mark.parametrize(
    ("codec", "declared", "nul"),
    [
        ("utf-16-le", None, 21),
        ("utf-16-be", None, 21),
        ("utf-32-le", None, 67),
        ("utf-32-be", None, 67),
        ("utf-16-le", "latin-1", 21),
    ],
)
def test_utf16_or_32_without_bom_names_the_encoding_not_column_counts(
    tmp_path, codec, declared, nul
):
    data = WIDE.encode(codec)
    assert data.count(0) == nul
    (tmp_path / "w.csv").write_bytes(data)
    src = {"name": "w", "format": "csv", "path": "w.csv"}
    if declared:
        src["encoding"] = declared
    assert message(tmp_path, [src]) == (
        f"w.csv: {nul} of its first {len(data)} bytes are NUL: it looks like {codec.upper()} "
        f"text without a byte-order mark, not {declared or 'utf-8'} text; "
        f"set ingest.sources.0.encoding to {codec}"
    )
    t = ingest(tmp_path, [{**src, "encoding": codec}])  # the advice works
    assert t.column("city").to_pylist() == ["München", "東京"]


def test_utf16_bom_and_nul_heavy_json_are_named_too(tmp_path):
    (tmp_path / "b.csv").write_bytes(WIDE.encode("utf-16"))  # with its byte-order mark
    assert message(tmp_path, [{"name": "b", "format": "csv", "path": "b.csv"}]) == (
        "b.csv: starts with a UTF-16-LE byte-order mark: not utf-8 text; "
        "set ingest.sources.0.encoding to utf-16"
    )
    data = '{"id": 1, "t": "x"}\n'.encode("utf-16-le")
    (tmp_path / "j.jsonl").write_bytes(data)
    src = {"name": "j", "format": "jsonl", "path": "j.jsonl"}
    assert message(tmp_path, [src]) == (
        f"j.jsonl: 20 of its first {len(data)} bytes are NUL: it looks like UTF-16-LE text "
        "without a byte-order mark, not utf-8 text; set ingest.sources.0.encoding to utf-16-le"
    )
    (tmp_path / "z.csv").write_bytes(b"id,v\n" + bytes(64))  # NULs, no text pattern
    assert message(tmp_path, [{"name": "z", "format": "csv", "path": "z.csv"}]) == (
        "z.csv: 64 of its first 69 bytes are NUL: it is binary, not utf-8 text; "
        "set ingest.sources.0.encoding to the encoding of its text"
    )


def test_latin1_jsonl_declared(tmp_path):
    (tmp_path / "l.jsonl").write_bytes('{"id": 1, "t": "Größe"}\n'.encode("latin-1"))
    src = {"name": "l", "format": "jsonl", "path": "l.jsonl", "encoding": "latin-1"}
    assert ingest(tmp_path, [src]).column("t").to_pylist() == ["Größe"]


def test_byte_undefined_in_the_declared_encoding(tmp_path):
    data = b"id,v\n1,ok\n2,\x81\n"
    (tmp_path / "w.csv").write_bytes(data)
    src = {"name": "w", "format": "csv", "path": "w.csv", "encoding": "cp1252"}
    assert data.index(b"\x81") == 12
    assert message(tmp_path, [src]) == (
        "w.csv: byte 12 (line 3) is not valid cp1252 (0x81); "
        "set ingest.sources.0.encoding to the file's encoding, e.g. latin-1"
    )


def test_a_key_twice_in_one_object_is_a_bad_row(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": 1, "x": 1}\n{"id": 2, "x": 1, "x": 2}\n')
    src = {"name": "d", "format": "jsonl", "path": "d.jsonl"}
    assert message(tmp_path, [src]) == (
        "d.jsonl: line 2: not valid JSON: key 'x' appears twice in one object" + SKIP_HINT
    )
    (tmp_path / "a.json").write_text('[{"id": 1, "o": {"p": 1, "p": 2}}, {"id": 2, "o": {"p": 3}}]')
    src = {"name": "a", "format": "json", "path": "a.json"}
    assert message(tmp_path, [src]) == (
        "a.json: element 0 (line 1): not valid JSON: key 'p' appears twice in one object"
        + SKIP_HINT
    )
    t = ingest(tmp_path, [src], on_error="skip")
    assert t.column("o").to_pylist() == [{"p": 3}]
