"""One fingerprint rule, both directions: what changes no output byte (batch sizes, the join's
partition size: `NON_BYTE_PARAMS`) leaves the fingerprint and every byte of the dataset,
metadata.json whole, as they are; every other key, and what decides where rows land (the order
of the split ratios), changes it. Plus the small metadata: one digest per source, whatever the number
of files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataops import naming
from dataops.config import SerializeParams, parse_params
from dataops.fingerprint import (
    NON_BYTE_PARAMS,
    content_params,
    dataset_fingerprint,
    files_digest,
    ordered_ratios,
)
from dataops.metadata import FeatureInfo, read_metadata
from dataops.stages.pipeline import run_pipeline
from dataops.stages.serialize import run_serialize
from tests.support.project import GOLDEN, small_params_data
from tests.support.records import write_preprocessed


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _build(raw: Path, root: Path, **overrides) -> Path:
    """ingest → preprocess → serialize of the small sample's raw files under `root`."""
    shutil.copytree(raw, root / naming.SAMPLE_DIR)
    params = parse_params(small_params_data(**overrides))
    run_pipeline(params, root, sample=False, validate=False)
    return root / naming.DATASET_DIR


# For every key of NON_BYTE_PARAMS, values far from the default (1 row, the smallest partition):
# the most cuts, so the likeliest place for a byte to move.
CUT_VALUES: dict[tuple[str, str], list[int]] = {
    # From 16 rows: with 1, the first batch of captions.jsonl is one null and ingest decides
    # the column's type from it (issue 11, item 1), which is not what this test is about.
    ("ingest", "batch_rows"): [16, 37],
    ("ingest", "partition_bytes"): [1024],
    ("preprocess", "batch_rows"): [1, 7],
    ("serialize", "batch_rows"): [1, 13],
}


def _assert_same_dataset(out: Path, ref: Path) -> None:
    """Every file of the dataset the same bytes (shards, indexes, TFDS files, metadata.json
    whole, fitted statistics included) and so the same fingerprint."""
    assert read_metadata(out).fingerprint == read_metadata(ref).fingerprint
    got, want = _files(out), _files(ref)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name


def test_every_non_byte_param_is_checked_through_the_pipeline():
    assert set(CUT_VALUES) == {(s, k) for s, keys in NON_BYTE_PARAMS.items() for k in keys}


@pytest.mark.slow
@pytest.mark.parametrize(
    "section,key,value", [(s, k, v) for (s, k), vs in sorted(CUT_VALUES.items()) for v in vs]
)
def test_a_non_byte_param_changes_no_byte_and_not_the_fingerprint(
    small_dataset, tmp_path, section, key, value
):
    out = _build(small_dataset / naming.SAMPLE_DIR, tmp_path, **{section: {key: value}})
    _assert_same_dataset(out, small_dataset / naming.DATASET_DIR)


@pytest.mark.slow
@settings(max_examples=2, deadline=None, derandomize=True)
@given(
    ingest=st.integers(16, 300),
    partition=st.sampled_from([1024, 4096, 1 << 20]),
    preprocess=st.integers(1, 300),
    serialize=st.integers(1, 300),
)
def test_batch_sizes_together_change_no_byte_and_not_the_fingerprint(
    small_dataset, ingest, partition, preprocess, serialize
):
    with tempfile.TemporaryDirectory() as tmp:
        out = _build(
            small_dataset / naming.SAMPLE_DIR,
            Path(tmp),
            ingest={"batch_rows": ingest, "partition_bytes": partition},
            preprocess={"batch_rows": preprocess},
            serialize={"batch_rows": serialize},
        )
        _assert_same_dataset(out, small_dataset / naming.DATASET_DIR)


@pytest.mark.slow
def test_reordering_split_ratios_changes_the_fingerprint(small_dataset, tmp_path):
    ref = read_metadata(small_dataset / naming.DATASET_DIR)
    ratios = small_params_data()["preprocess"]["split"]["ratios"]
    reordered = dict(reversed(list(ratios.items())))
    assert reordered == ratios and list(reordered) != list(ratios)  # same mapping, other order
    data = small_params_data()
    data["preprocess"]["split"]["ratios"] = reordered
    shutil.copytree(small_dataset / naming.SAMPLE_DIR, tmp_path / naming.SAMPLE_DIR)
    run_pipeline(parse_params(data), tmp_path, sample=False, validate=False)
    meta = read_metadata(tmp_path / naming.DATASET_DIR)
    assert meta.num_examples != ref.num_examples  # the order moved rows between splits ...
    assert meta.fingerprint != ref.fingerprint  # ... so the fingerprint moves too
    stored = meta.preprocessing["params"]["preprocess"]["split"]["ratios"]
    assert stored == [{"name": n, "ratio": r} for n, r in reordered.items()]  # order kept


def test_the_recipe_leaves_out_exactly_the_non_byte_params():
    params = parse_params(small_params_data())
    base = {
        "ingest": params.section("ingest"),
        "preprocess": {
            **params.section("preprocess"),
            "split": {
                "seed": 0,
                "ratios": ordered_ratios(params.preprocess.split.ratios),
            },
        },
        "serialize": params.section("serialize"),
    }

    def fp(p):
        return dataset_fingerprint(format_version=1, name="sample", inputs={}, params=p)

    ref = fp(base)
    for section, value in base.items():
        for key in value:
            changed = json.loads(json.dumps(base))
            changed[section][key] = ["something else"]
            moved = fp(changed) != ref
            assert moved == (key not in NON_BYTE_PARAMS.get(section, ())), (section, key)
    described = json.loads(json.dumps(base))
    described["preprocess"]["features"][0]["description"] = "documentation, not data"
    assert fp(described) == ref
    swapped = json.loads(json.dumps(base))
    swapped["preprocess"]["split"]["ratios"].reverse()
    assert fp(swapped) != ref
    with pytest.raises(ValueError, match="ordered list"):
        content_params({"preprocess": {"split": {"ratios": {"train": 1.0}}}})


def test_files_digest_is_the_sha256_of_the_sha256sum_listing(tmp_path):
    files = {}
    for name, body in (("b/2.png", b"two"), ("a.csv", b"one"), ("b/10.png", b"ten")):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(body)
        files[name] = hashlib.sha256(body).hexdigest()
    listing = subprocess.run(
        "find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout
    assert files_digest(files) == hashlib.sha256(listing).hexdigest()
    assert files_digest({**files, "a.csv": "0" * 64}) != files_digest(files)
    renamed = {("c.csv" if k == "a.csv" else k): v for k, v in files.items()}
    assert files_digest(renamed) != files_digest(files)


def test_metadata_stays_small_with_10k_input_files(tmp_path):
    features = [FeatureInfo(name="x", kind="tensor", dtype="int64", shape=[], encoding="none")]
    pre = write_preprocessed(tmp_path / "pre", features, {"train": [{"x": 1}]})
    state = json.loads((pre / "state.json").read_text())
    files = {f"data/sample/images/c{i % 10}/{i:06d}.png": f"{i:064x}" for i in range(10_000)}
    state["inputs"] = {
        "images": {
            "format": "image_folder",
            "path": "data/sample/images",
            "num_files": len(files),
            "num_bytes": 123_456_789,
            "files": files,
        }
    }
    (pre / "state.json").write_text(json.dumps(state))
    run_serialize(SerializeParams(), "big", pre, tmp_path / "ds")
    size = (tmp_path / "ds" / naming.METADATA_FILE).stat().st_size
    assert size < 10_000, size
    info = read_metadata(tmp_path / "ds").inputs["images"]
    assert (info.num_files, info.num_bytes, info.sha256) == (
        10_000,
        123_456_789,
        files_digest(files),
    )


def test_older_metadata_with_a_file_list_still_reads(tmp_path):
    """Published versions written before the digest listed every file: they still load."""
    shutil.copytree(GOLDEN, tmp_path / "g")
    path = tmp_path / "g" / naming.METADATA_FILE
    data = json.loads(path.read_text())
    files = {"data/sample/a.csv": "1" * 64}
    data["inputs"] = {
        "a": {
            "format": "csv",
            "path": "data/sample/a.csv",
            "num_files": 1,
            "num_bytes": 3,
            "files": files,
        }
    }
    path.write_text(json.dumps(data))
    assert read_metadata(tmp_path / "g").inputs["a"].sha256 == files_digest(files)
