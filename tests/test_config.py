"""params.yaml validation: one message naming the key, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataops.config import load_params, parse_params
from dataops.errors import ConfigError
from tests.conftest import REPO, repo_params, run_cli


def test_committed_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert p.dataset.name == "sample"
    assert list(p.preprocess.split.ratios) == ["train", "validation", "test"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["serialize"].update(shard_size=5), "unknown key 'serialize.shard_size'"),
        (lambda d: d.update(extra_section={}), "unknown key 'extra_section'"),
        (lambda d: d["serialize"].update(num_shards="many"), "key 'serialize.num_shards'"),
        (
            lambda d: d["preprocess"]["split"].update(ratios={"train": 0.7, "test": 0.2}),
            "split ratios must sum to 1, they sum to 0.9",
        ),
        (lambda d: d["dataset"].update(on_error="ignore"), "key 'dataset.on_error'"),
        (
            lambda d: d["preprocess"]["features"].append({"name": "x", "kind": "complex"}),
            "key 'preprocess.features.9'",
        ),
        (
            lambda d: d["preprocess"]["features"].append({"name": "label", "kind": "categorical"}),
            "feature names must be unique; repeated: ['label']",
        ),
        (lambda d: d.pop("ingest"), "missing key 'ingest'"),
        (
            lambda d: d["serialize"].update(compression_level=6),
            "key 'serialize.compression_level': deflate 'isal' takes levels 0-3 (got 6)",
        ),
        (
            lambda d: d["serialize"].update(deflate="zlib", compression_level=10),
            "key 'serialize.compression_level': deflate 'zlib' takes levels 0-9 (got 10)",
        ),
        (lambda d: d["serialize"].update(deflate="zstd"), "key 'serialize.deflate'"),
    ],
)
def test_bad_params_name_the_key(mutate, expected):
    data = repo_params()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse_params(data)
    assert expected in str(err.value)


def test_cli_bad_key_exits_2_and_writes_nothing(tmp_path: Path):
    data = repo_params()
    data["ingest"]["batch_size"] = 10  # the key is batch_rows
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = run_cli("ingest", "--params", "params.yaml", "--out", "data/snapshot", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["error: params.yaml: unknown key 'ingest.batch_size'"]
    assert not (tmp_path / "data").exists()


def test_cli_missing_source_exits_2_naming_the_path(tmp_path: Path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params()))
    r = run_cli("ingest", cwd=tmp_path)
    assert r.returncode == 2
    assert "key 'ingest.sources.0.path': data/raw/attributes.csv does not exist" in r.stderr
    assert not (tmp_path / "data" / "snapshot").exists()


def test_missing_params_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="params.yaml: file not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
