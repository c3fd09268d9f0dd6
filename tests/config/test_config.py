"""params.yaml validation: one message naming the key, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataops.config import load_params, parse_params
from dataops.errors import ConfigError
from tests.support.project import REPO, repo_params, run_cli


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
    assert "key 'ingest.sources.0.path': data/sample/attributes.csv does not exist" in r.stderr
    assert not (tmp_path / "data" / "snapshot").exists()


def test_missing_params_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="params.yaml: file not found"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_documented_defaults_need_no_section():
    """Only `ingest` and `preprocess` are required; every other section takes its defaults."""
    data = repo_params()
    p = parse_params({"ingest": data["ingest"], "preprocess": data["preprocess"]})
    assert p.dataset.name == "sample"
    assert p.sample.num_examples == 2000
    assert p.serialize.num_shards is None
    assert p.validate_.min_examples == {}


def test_yaml_12_booleans_and_small_aliases(tmp_path: Path):
    from dataops.config import load_yaml

    assert load_yaml("a: yes\nb: on\nc: true\nd: False\n") == {
        "a": "yes",
        "b": "on",
        "c": True,
        "d": False,
    }
    # a few aliases are fine: only a document that expands past the budget is refused
    assert load_yaml("x: &s {k: 1}\ny: *s\n") == {"x": {"k": 1}, "y": {"k": 1}}


def test_the_node_budget_counts_expanded_aliases():
    from dataops.config import MAX_YAML_NODES, load_yaml

    wide = "a: &a [" + ", ".join(["0"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 99) + "]\n"
    with pytest.raises(ConfigError, match=f"expand to more than {MAX_YAML_NODES} values"):
        load_yaml(wide)
    load_yaml(wide.replace("* 99", "* 9").replace(", ".join(["*a"] * 99), ", ".join(["*a"] * 9)))


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("validate", "allow_nan", "false"),
        ("validate", "allow_nan", 0),
        ("validate", "batch_size", "1024"),
        ("validate", "batch_size", 1024.0),
        ("serialize", "num_shards", "2"),
        ("serialize", "target_shard_bytes", 1.5e6),
        ("serialize", "compression_level", "1"),
        ("sample", "num_examples", "10"),
        ("sample", "seed", True),
        ("ingest", "batch_rows", "1"),
        ("preprocess", "batch_rows", "1"),
        ("dataset", "name", 5),
    ],
)
def test_no_coercion(section, key, value):
    data = repo_params(**{section: {key: value}})
    with pytest.raises(ConfigError, match=f"key '{section}.{key}'"):
        parse_params(data)


@pytest.mark.parametrize(
    "field",
    [
        {"standardize": "yes"},
        {"impute": "mean", "standardize": 1},
    ],
)
def test_no_coercion_in_features(field):
    data = repo_params()
    data["preprocess"]["features"][3].update(field)
    with pytest.raises(ConfigError, match="key 'preprocess.features.3.numeric.standardize'"):
        parse_params(data)


@pytest.mark.parametrize("name", ["a..b", "a.lock", "a.", "a@{b", "a b", "a/b", "-a", "x" * 101])
def test_dataset_name_is_a_bounded_git_tag_component(name):
    data = repo_params(dataset={"name": name})
    with pytest.raises(ConfigError, match="key 'dataset.name'"):
        parse_params(data)


def test_dataset_name_git_check_ref_format_agrees(tmp_path: Path):
    """Names the model accepts are valid tag names for git itself."""
    import subprocess

    for name in ["sample", "a.b-c_d", "v1.0", "x" * 100, "A-1.2_b"]:
        parse_params(repo_params(dataset={"name": name}))
        r = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}-v1"], capture_output=True)
        assert r.returncode == 0, name


def test_a_10_mb_value_gives_a_short_message():
    """Through parse_params (the Airflow form path; a file that big is refused by its size)."""
    data = repo_params(dataset={"name": "x" * 10_000_000})
    with pytest.raises(ConfigError) as err:
        parse_params(data, "exp.yaml")
    msg = str(err.value)
    assert msg.startswith("exp.yaml: key 'dataset.name': String should have at most 100 characters")
    assert msg.endswith("… (10000002 chars))")
    assert len(msg) < 400
