"""Missing and empty values of categorical, text and key features: their own policy, honest counts."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from dataops.config import IngestParams, PreprocessParams
from dataops.errors import DatasetError
from dataops.stages.ingest import run_ingest
from dataops.stages.preprocess import read_state, run_preprocess
from dataops.stages.split_assign import assign_splits

RATIOS = {"train": 0.5, "test": 0.5}
KEYS = [str(i) for i in range(40)]
SPLIT = assign_splits(KEYS, RATIOS, 0)
TRAIN_KEY, TEST_KEY = (KEYS[list(SPLIT).index(s)] for s in (0, 1))


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """40 rows; row TRAIN_KEY has no color and an empty caption cell, row TEST_KEY the colour
    'teal' (never in train), row 7 a caption of spaces only."""
    root = tmp_path_factory.mktemp("missing")
    lines = ["id,color,caption"]
    for k in KEYS:
        color = "" if k == TRAIN_KEY else ("teal" if k == TEST_KEY else ["red", "blue"][int(k) % 2])
        caption = "" if k == TRAIN_KEY else ("   " if k == "7" else f"Caption {k}")
        lines.append(f"{k},{color},{caption}")
    (root / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ingest = IngestParams.model_validate(
        {"key": "id", "sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    )
    run_ingest(ingest, root, root / "snap")
    return root / "snap"


def _run(snapshot, tmp_path, on_error="skip", **options):
    color = {"name": "color", "kind": "categorical", **options.get("color", {})}
    caption = {"name": "caption", "kind": "text", "tokenize": True, **options.get("caption", {})}
    pre = PreprocessParams.model_validate(
        {
            "split": {"ratios": RATIOS},
            "features": [{"name": "id", "kind": "key"}, color, caption],
        }
    )
    return run_preprocess(pre, snapshot, tmp_path / "pre", on_error)


def _rows(tmp_path) -> dict[str, dict]:
    rows = {}
    for split in RATIOS:
        for r in pq.read_table(tmp_path / "pre" / f"{split}.parquet").to_pylist():
            rows[r["id"]] = r
    return rows


def test_defaults_keep_every_row(snapshot, tmp_path):
    """`unknown: oov` (and so a missing colour: oov) and `empty: keep`: nothing is dropped."""
    result = _run(snapshot, tmp_path)
    assert result.skipped == {} and sum(result.num_examples.values()) == 40
    rows = _rows(tmp_path)
    oov = len(read_state(tmp_path / "pre").state["color"]["vocabulary"])
    assert rows[TRAIN_KEY]["color"] == rows[TEST_KEY]["color"] == oov == 2
    assert rows[TRAIN_KEY]["caption"] == "" and rows[TRAIN_KEY]["caption_ids"] == []
    assert rows["7"]["caption"] == "" and rows["7"]["caption_ids"] == []


def test_a_missing_category_is_counted_as_missing_not_unknown(snapshot, tmp_path):
    result = _run(snapshot, tmp_path, color={"unknown": "error"})
    assert result.skipped == {"missing_value": 1, "unknown_category": 1}
    assert TRAIN_KEY not in _rows(tmp_path) and TEST_KEY not in _rows(tmp_path)


def test_missing_and_unknown_categories_have_separate_policies(snapshot, tmp_path):
    result = _run(snapshot, tmp_path, color={"unknown": "error", "missing": "oov"})
    assert result.skipped == {"unknown_category": 1}
    assert _rows(tmp_path)[TRAIN_KEY]["color"] == 2

    result = _run(snapshot, tmp_path, color={"unknown": "oov", "missing": "error"})
    assert result.skipped == {"missing_value": 1}
    assert _rows(tmp_path)[TEST_KEY]["color"] == 2


def test_a_missing_category_fails_naming_the_file_and_line(snapshot, tmp_path):
    line = KEYS.index(TRAIN_KEY) + 2
    with pytest.raises(DatasetError) as err:
        _run(snapshot, tmp_path, on_error="fail", color={"missing": "error"})
    assert str(err.value) == (
        f"t.csv: line {line} (id={TRAIN_KEY!r}): column 'color': value is missing"
        " (set dataset.on_error: skip to drop such rows and count them)"
    )


def test_empty_text_error_counts_missing_and_empty_apart(snapshot, tmp_path):
    result = _run(snapshot, tmp_path, caption={"empty": "error"})
    assert result.skipped == {"missing_value": 1, "empty_text": 1}
    rows = _rows(tmp_path)
    assert TRAIN_KEY not in rows and "7" not in rows and len(rows) == 38
    with pytest.raises(DatasetError, match=r"column 'caption': text is missing"):
        _run(snapshot, tmp_path, on_error="fail", caption={"empty": "error"})


def test_an_unknown_category_under_fail_names_the_value_row_and_column(snapshot, tmp_path):
    """Pass 2 (vectorized lookup): the first bad row's message names its line, key and value."""
    with pytest.raises(DatasetError) as err:
        _run(snapshot, tmp_path, "fail", color={"unknown": "error", "missing": "oov"})
    msg = str(err.value)
    assert f"(id='{TEST_KEY}')" in msg and "column 'color'" in msg, msg
    assert "value 'teal' is not in the train vocabulary" in msg, msg
