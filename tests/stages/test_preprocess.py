"""Preprocess: splits by key hash, statistics fitted on train only, vocabularies, bad rows."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from dataops.config import TextFeature, parse_params
from dataops.errors import DatasetError
from dataops.features.text import normalize_text, tokenize
from dataops.stages.ingest import run_ingest
from dataops.stages.preprocess import read_state, run_preprocess
from dataops.stages.split_assign import assign_splits
from tests.support.project import repo_params
from tests.support.records import read_snapshot, snapshot_parts


def test_split_of_a_key_is_stable_when_rows_are_added():
    ratios = {"train": 0.8, "validation": 0.1, "test": 0.1}
    keys = [str(i) for i in range(5000)]
    a = assign_splits(keys[:1000], ratios, seed=0)
    b = assign_splits(keys, ratios, seed=0)
    assert (a == b[:1000]).all()
    frac = np.bincount(b, minlength=3) / len(b)
    assert abs(frac[0] - 0.8) < 0.03 and abs(frac[1] - 0.1) < 0.02
    assert not (assign_splits(keys, ratios, seed=1) == b).all()


def test_split_of_a_key_is_the_documented_hash():
    """The batched hash gives exactly the split of the per-key formula: u = the first 8
    bytes of sha256(f"{seed}:{key}"), big-endian, / 2**64, on the cumulative ratios."""
    import hashlib

    ratios = {"train": 0.5, "a": 0.25, "b": 0.125, "c": 0.125}
    keys = [f"k{i}" for i in range(2000)] + list(range(500)) + ["", "é", None]
    bounds = np.cumsum(list(ratios.values()))
    bounds[-1] = 1.0
    u = [
        int.from_bytes(hashlib.sha256(f"7:{k}".encode()).digest()[:8], "big") / 2.0**64
        for k in keys
    ]
    want = np.searchsorted(bounds, u, side="right").clip(max=len(bounds) - 1)
    assert assign_splits(keys, ratios, seed=7).tolist() == want.tolist()
    assert len(assign_splits([], ratios, seed=7)) == 0


def test_text_normalization_and_tokens():
    f = TextFeature(kind="text", name="t")
    assert normalize_text("  Ｃafé\tNAÏVE  ", f) == "café naïve"
    assert tokenize("hello, world!") == ["hello", ",", "world", "!"]


def test_small_dataset_state_is_fitted_on_train_only(small_dataset):
    pre = small_dataset / "data" / "preprocessed"
    state = read_state(pre)
    train = pq.read_table(pre / "train.parquet")
    snap = read_snapshot(small_dataset / "data" / "snapshot")
    ids = set(train.column("id").to_pylist())
    raw = [
        float(w)
        for i, w in zip(
            snap.column("id").to_pylist(), snap.column("weight").to_pylist(), strict=True
        )
        if i in ids and w is not None
    ]
    st = state.state["weight"]
    assert st["count"] == len(raw)
    assert st["mean"] == pytest.approx(np.mean(raw), rel=1e-12)
    assert st["std"] == pytest.approx(np.std(raw), rel=1e-9)
    w = train.column("weight").to_numpy()
    assert abs(w.mean()) < 0.05 and w.dtype == np.float32
    assert state.state["label"]["vocabulary"] == ["circle", "cross", "square", "stripes"]
    assert state.split_names == ["train", "validation", "test"]
    assert sum(s.num_examples for s in state.splits) == snap.num_rows
    vocab = state.state["caption"]["vocabulary"]
    first = train.slice(0, 1).to_pylist()[0]
    assert first["caption_ids"] == [
        vocab.index(t) + 2 if t in vocab else 1 for t in tokenize(first["caption"])
    ]


def _project(tmp_path, n=60, **overrides):
    from dataops.config import SampleParams
    from dataops.stages.sample import generate_sample

    data = repo_params(sample={"num_examples": n})
    for k, v in overrides.items():
        data[k].update(v)
    params = parse_params(data)
    generate_sample(tmp_path / "data" / "sample", SampleParams(num_examples=n))
    return params


def test_corrupt_image_fails_naming_the_file(tmp_path):
    params = _project(tmp_path)
    victim = sorted((tmp_path / "data" / "sample" / "images").rglob("7.png"))[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    run_ingest(params.ingest, tmp_path, tmp_path / "snap")
    with pytest.raises(DatasetError) as err:
        run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre")
    rel = victim.relative_to(tmp_path / "data" / "sample" / "images").as_posix()
    assert f"data/sample/images: {rel} (id='7'): column 'image': cannot decode image" in str(
        err.value
    )
    assert not (tmp_path / "pre").exists()


def test_corrupt_image_skipped_and_counted(tmp_path):
    params = _project(tmp_path, dataset={"on_error": "skip"})
    next((tmp_path / "data" / "sample" / "images").rglob("7.png")).write_bytes(b"garbage")
    run_ingest(params.ingest, tmp_path, tmp_path / "snap", "skip")
    result = run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre", "skip")
    assert result.skipped == {"unreadable_image": 1}
    assert sum(result.num_examples.values()) == 59
    assert read_state(tmp_path / "pre").skipped == {"unreadable_image": 1}


def test_statistics_leave_out_a_train_row_whose_image_fails_only_when_decoded(tmp_path):
    """Pass 1 does not decode images; a train row dropped for its image in pass 2 must not
    stay in the fitted mean/std (preprocess refits without it)."""
    params = _project(tmp_path, dataset={"on_error": "skip"})
    rows = [line.split(",") for line in (tmp_path / "data" / "sample" / "attributes.csv").open()]
    weighed = [int(r[0]) for r in rows[1:] if r[1]]  # ids whose weight is in the statistics
    split = assign_splits([str(i) for i in weighed], params.preprocess.split.ratios, 0)
    victim_id = weighed[int(np.flatnonzero(split == 0)[0])]
    next((tmp_path / "data" / "sample" / "images").rglob(f"{victim_id}.png")).write_bytes(b"junk")
    run_ingest(params.ingest, tmp_path, tmp_path / "snap", "skip")
    result = run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre", "skip")
    assert result.skipped == {"unreadable_image": 1}
    train = pq.read_table(tmp_path / "pre" / "train.parquet")
    ids = set(train.column("id").to_pylist())
    assert victim_id not in ids and len(ids) == result.num_examples["train"]
    snap = read_snapshot(tmp_path / "snap")
    raw = [
        float(w)
        for i, w in zip(
            snap.column("id").to_pylist(), snap.column("weight").to_pylist(), strict=True
        )
        if i in ids and w is not None
    ]
    st = read_state(tmp_path / "pre").state["weight"]
    assert st["count"] == len(raw)
    assert st["mean"] == pytest.approx(np.mean(raw), rel=1e-12)
    assert st["std"] == pytest.approx(np.std(raw), rel=1e-9)


def test_wrong_type_value_names_file_and_line(tmp_path):
    params = _project(tmp_path)
    csv = tmp_path / "data" / "sample" / "attributes.csv"
    lines = csv.read_text().splitlines()
    cells = lines[5].split(",")
    cells[1] = "heavy"
    lines[5] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    run_ingest(params.ingest, tmp_path, tmp_path / "snap")
    with pytest.raises(
        DatasetError,
        match=r"data/sample/attributes.csv: line 6 \(id='5'\): column 'weight': 'heavy' is not a number",
    ):
        run_preprocess(params.preprocess, tmp_path / "snap", tmp_path / "pre")


def test_preprocess_is_deterministic(small_dataset, tmp_path):
    from tests.support.project import small_params

    params = small_params()
    run_preprocess(params.preprocess, small_dataset / "data" / "snapshot", tmp_path / "again")
    for name in ("train.parquet", "validation.parquet", "test.parquet", "state.json"):
        assert (tmp_path / "again" / name).read_bytes() == (
            small_dataset / "data" / "preprocessed" / name
        ).read_bytes()


def test_a_feature_column_not_in_the_snapshot_lists_every_column(tmp_path):
    """Only the columns the features use are read, yet a missing one's error still lists
    every snapshot column, those no feature uses too; rows keep their labels for messages."""
    from dataops.config import IngestParams, PreprocessParams
    from dataops.errors import ConfigError

    (tmp_path / "t.csv").write_text("id,x,unused\n1,0.5,a\n2,oops,b\n", encoding="utf-8")
    ingest = IngestParams.model_validate(
        {"key": "id", "sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    )
    run_ingest(ingest, tmp_path, tmp_path / "snap")

    def pre(column: str) -> PreprocessParams:
        return PreprocessParams.model_validate(
            {
                "split": {"ratios": {"train": 1.0}},
                "features": [
                    {"name": "id", "kind": "key"},
                    {"name": "x", "kind": "numeric", "column": column},
                ],
            }
        )

    with pytest.raises(ConfigError, match=r"columns: \['id', 'x', 'unused'\]"):
        run_preprocess(pre("nope"), tmp_path / "snap", tmp_path / "pre")
    with pytest.raises(DatasetError, match=r"t.csv: line 3 \(id='2'\): column 'x': 'oops'"):
        run_preprocess(pre("x"), tmp_path / "snap", tmp_path / "pre")


def test_split_of_an_arrow_key_column_is_assign_splits():
    """`split_keys` (the passes' batched path over the Arrow column) gives `assign_splits`'s
    index for text, integer (their decimal digits), missing ('None') and other keys."""
    import pyarrow as pa

    from dataops.stages.split_assign import split_keys

    ratios = {"train": 0.5, "a": 0.25, "b": 0.25}
    columns = [
        pa.array([f"k{i}" for i in range(300)] + ["", "é", None, "日本"]),
        pa.array([*range(-150, 150), None, 2**63 - 1, -(2**63)], pa.int64()),
        pa.array([1, 255, None], pa.uint8()),
        pa.array(["x", None, "y"], pa.large_string()),
        pa.chunked_array([["a", "b"], [], ["c", None]]),
        pa.array([True, False, None]),  # not text or integer: per key, 'True'
        pa.array([1.5, None]),
        pa.array([], pa.string()),
    ]
    for col in columns:
        for seed in (0, 7):
            want = assign_splits(col.to_pylist(), ratios, seed).tolist()
            assert split_keys(col, ratios, seed).tolist() == want, (col.type, seed)


def test_bad_row_past_the_first_row_group_names_its_line(tmp_path, monkeypatch):
    """The passes do not read the row labels; a message reads its batch's rows of them from
    the snapshot, across row groups and parts (ingest writes 64 rows per row group and, here,
    two row groups per part; preprocess reads 50)."""
    import dataops.stages.snapshot_files as snapshot_files
    from dataops.config import IngestParams, PreprocessParams

    monkeypatch.setattr(snapshot_files, "PART_BATCHES", 2)
    rows = [f"{i},{i / 2}" for i in range(300)]
    rows[237] = "237,oops"
    (tmp_path / "t.csv").write_text("id,x\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ingest = IngestParams.model_validate(
        {
            "key": "id",
            "batch_rows": 64,
            "sources": [{"name": "t", "format": "csv", "path": "t.csv"}],
        }
    )
    run_ingest(ingest, tmp_path, tmp_path / "snap")
    parts = snapshot_parts(tmp_path / "snap")
    assert [p.name for p in parts] == [f"snapshot-0000{k}-of-00003.parquet" for k in range(3)]
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in parts] == [2, 2, 1]
    pre = PreprocessParams.model_validate(
        {
            "split": {"ratios": {"train": 1.0}},
            "batch_rows": 50,
            "features": [{"name": "id", "kind": "key"}, {"name": "x", "kind": "numeric"}],
        }
    )
    with pytest.raises(DatasetError, match=r"t.csv: line 239 \(id='237'\): column 'x': 'oops'"):
        run_preprocess(pre, tmp_path / "snap", tmp_path / "pre")
    r = run_preprocess(pre, tmp_path / "snap", tmp_path / "pre", on_error="skip")
    assert r.num_examples == {"train": 299} and r.skipped == {"wrong_type": 1}
