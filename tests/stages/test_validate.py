"""Validate and verify: integrity failures name the file; expectations report every violation."""

from __future__ import annotations

import json
import shutil

import pytest

from dataops.config import SerializeParams, ValidateParams
from dataops.metadata import FeatureInfo, read_metadata
from dataops.stages.serialize import run_serialize
from dataops.stages.validate import run_validate
from tests.support.project import run_cli
from tests.support.records import write_preprocessed


@pytest.fixture
def dataset(small_tfrecords, tmp_path):
    d = tmp_path / "tfrecords"
    shutil.copytree(small_tfrecords, d)
    return d


def _train_shard(d):
    return d / read_metadata(d).split("train").shards[0].file


def test_intact_dataset_verifies_and_validates(dataset, tmp_path):
    r = run_cli("verify", str(dataset))
    assert r.returncode == 0, r.stderr
    assert "match metadata.json" in r.stdout
    result = run_validate(
        ValidateParams(min_examples={"train": 10}), dataset, tmp_path / "report.json"
    )
    assert result.ok, result.violations
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True and report["num_examples"] == read_metadata(dataset).num_examples
    assert sum(report["class_counts"]["train"]["label"].values()) == report["num_examples"]["train"]


def test_flipped_byte_is_named(dataset, tmp_path):
    shard = _train_shard(dataset)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    r = run_cli("verify", str(dataset))
    assert r.returncode == 1
    assert f"{shard}: sha256 " in r.stderr
    assert f"{shard}: data CRC mismatch in record" in r.stderr
    result = run_validate(ValidateParams(), dataset, tmp_path / "report.json")
    assert any(v.startswith(f"{shard}: sha256") for v in result.violations)
    assert any(v.startswith(f"{shard}: unreadable:") for v in result.violations), result.violations


def test_truncated_shard_is_named(dataset, tmp_path):
    shard = _train_shard(dataset)
    shard.write_bytes(shard.read_bytes()[:-100])
    r = run_cli("verify", str(dataset))
    assert r.returncode == 1
    assert f"{shard}: truncated record" in r.stderr
    r = run_cli(
        "validate", "--params", "/dev/null", "--dataset", str(dataset)
    )  # bad params: exit 2 first
    assert r.returncode == 2
    result = run_validate(ValidateParams(), dataset, tmp_path / "report.json")
    assert f"{shard}: " in "\n".join(result.violations)
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is False


def test_missing_and_stray_shards(dataset):
    shard = _train_shard(dataset)
    shutil.move(shard, dataset / "sample-train.tfrecord-00000-of-00002")
    r = run_cli("verify", str(dataset))
    assert r.returncode == 1
    assert f"{shard}: missing (split 'train' needs it)" in r.stderr
    assert "sample-train.tfrecord-00000-of-00002: shard not listed in metadata.json" in r.stderr


def test_expectations_report_every_violation(dataset, tmp_path):
    params = ValidateParams.model_validate(
        {
            "min_examples": {"train": 10**6, "nosuch": 1},
            "label_range": {"feature": "label", "min": 0, "max": 1},
            "class_balance": {"feature": "label", "min_fraction": 0.3, "max_fraction": 0.9},
        }
    )
    v = run_validate(params, dataset, tmp_path / "r.json").violations
    n = read_metadata(dataset).split("train").num_examples
    assert f"split 'train': {n} examples, validate.min_examples wants at least 1000000" in v
    assert (
        "validate.min_examples: split 'nosuch' does not exist (splits: ['test', 'train', 'validation'])"
        in v
    )
    assert any(
        x.startswith("split 'train': feature 'label' spans [0, 3], outside the allowed [0, 1]")
        for x in v
    )
    assert any("of 'label' is" in x and "outside [0.3, 0.9]" in x for x in v)


def test_nan_in_float_feature(tmp_path):
    f = [FeatureInfo(name="x", kind="tensor", dtype="float32", shape=[2], encoding="none")]
    write_preprocessed(
        tmp_path / "pre", f, {"train": [{"x": [1.0, float("nan")]}, {"x": [float("inf"), 0.0]}]}
    )
    run_serialize(SerializeParams(), "nan", tmp_path / "pre", tmp_path / "ds")
    v = run_validate(ValidateParams(), tmp_path / "ds").violations
    assert v == ["split 'train': feature 'x' has 2 NaN or Inf values (validate.allow_nan is false)"]
    assert run_validate(ValidateParams(allow_nan=True), tmp_path / "ds").ok


def test_cli_validate_exit_code_and_lines(dataset, tmp_path):
    import yaml

    from tests.support.project import repo_params

    data = repo_params()
    data["validate"]["min_examples"] = {"train": 10**6}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = run_cli(
        "validate",
        "--params",
        str(tmp_path / "params.yaml"),
        "--dataset",
        str(dataset),
        "--report",
        str(tmp_path / "rep.json"),
    )
    assert r.returncode == 1
    assert "violation: split 'train':" in r.stderr and "wants at least 1000000" in r.stderr
    assert json.loads((tmp_path / "rep.json").read_text())["ok"] is False
