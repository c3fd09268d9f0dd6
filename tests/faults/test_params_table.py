"""Malformed params files, run through the CLI: exit 2, one `error:` line naming the file given
with --params and the key, nothing written, no traceback, bounded time and message length."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.faults import error_lines
from tests.support.project import run_cli, small_params_data

LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


def _text(mutate: Callable[[dict], Any]) -> str:
    data = small_params_data(240)
    mutate(data)
    return yaml.safe_dump(data, sort_keys=False)


def _set(section: str, **kv: Any) -> Callable[[dict], Any]:
    return lambda d: d.setdefault(section, {}).update(kv)


def _feature(**f: Any) -> Callable[[dict], Any]:
    return lambda d: d["preprocess"]["features"].append(f)


# (id, file text or bytes, expected part of the one error line)
CASES: list[tuple[str, str | bytes, str]] = [
    (
        "duplicate-key",
        _text(lambda d: None) + "dataset:\n  name: again\n",
        "duplicate key 'dataset' at line",
    ),
    (
        "duplicate-nested-key",
        "dataset:\n  name: a\n  on_error: fail\n  name: b\n",
        "duplicate key 'name' at line 4 (first at line 2)",
    ),
    ("billion-laughs", LAUGHS, "anchors and aliases expand to more than 100000 values"),
    ("recursive-alias", "a: &a [1, *a]\n", "a recursive alias"),
    ("not-yaml", "dataset: [unclosed\n", "not valid YAML"),
    ("top-level-list", "- 1\n- 2\n", "expected a mapping at the top level, got list"),
    ("empty", "", "the file is empty"),
    ("not-utf8", b"dataset:\n  name: \xff\xfe\n", "not UTF-8 text (byte"),
    ("over-1mb", "# " + "x" * (1 << 20) + "\n", "larger than 1048576 bytes"),
    (
        "bool-quoted-yes",
        _text(_set("validate", allow_nan="yes")),
        "key 'validate.allow_nan': Input should be a valid boolean (got 'yes')",
    ),
    (
        "bool-bare-yes",
        _text(lambda d: None).replace("allow_nan: false", "allow_nan: yes"),
        "key 'validate.allow_nan': Input should be a valid boolean (got 'yes')",
    ),
    (
        "bool-from-int",
        _text(lambda d: d["preprocess"]["features"][3].update(standardize=1)),
        "key 'preprocess.features.3.numeric.standardize': Input should be a valid boolean",
    ),
    (
        "int-quoted",
        _text(_set("serialize", num_shards="2")),
        "key 'serialize.num_shards': Input should be a valid integer (got '2')",
    ),
    (
        "int-from-float",
        _text(_set("ingest", batch_rows=10.5)),
        "key 'ingest.batch_rows'",
    ),
    (
        "class-balance-min-over-max",
        _text(
            _set(
                "validate",
                class_balance={"feature": "label", "min_fraction": 0.6, "max_fraction": 0.2},
            )
        ),
        "key 'validate.class_balance': min_fraction 0.6 is greater than max_fraction 0.2",
    ),
    (
        "class-balance-fraction-over-1",
        _text(_set("validate", class_balance={"feature": "label", "max_fraction": 1.5})),
        "key 'validate.class_balance.max_fraction'",
    ),
    (
        "class-balance-unknown-feature",
        _text(_set("validate", class_balance={"feature": "labels"})),
        "validate.class_balance.feature: no feature 'labels' in preprocess.features",
    ),
    (
        "label-range-unknown-feature",
        _text(_set("validate", label_range={"feature": "nope", "min": 0, "max": 3})),
        "validate.label_range.feature: no feature 'nope'",
    ),
    (
        "label-range-on-text",
        _text(_set("validate", label_range={"feature": "caption", "min": 0, "max": 3})),
        "feature 'caption' is not an int64 scalar",
    ),
    (
        "label-range-min-over-max",
        _text(_set("validate", label_range={"feature": "label", "min": 5, "max": 1})),
        "min 5 is greater than max 1",
    ),
    (
        "min-examples-unknown-split",
        _text(_set("validate", min_examples={"train": 1, "valid": 1})),
        "validate.min_examples: ['valid'] are not splits of preprocess.split.ratios",
    ),
    (
        "tensor-shape-negative",
        _text(_feature(name="v", kind="tensor", shape=[-1])),
        "every side must be at least 1, got [-1]",
    ),
    (
        "tensor-shape-zero",
        _text(_feature(name="v", kind="tensor", shape=[4, 0])),
        "every side must be at least 1, got [4, 0]",
    ),
    (
        "tensor-shape-huge",
        _text(_feature(name="v", kind="tensor", shape=[100000, 100000])),
        "10000000000 elements per value; at most 1048576",
    ),
    (
        "name-git-dotdot",
        _text(_set("dataset", name="a..b")),
        "key 'dataset.name': 'a..b' cannot name a git tag: a tag cannot contain '..'",
    ),
    (
        "name-git-lock",
        _text(_set("dataset", name="data.lock")),
        "cannot end with '.lock'",
    ),
    (
        "name-too-long",
        _text(_set("dataset", name="x" * 500_000)),
        "String should have at most 100 characters (got 'xxxx",
    ),
    (
        "split-name-with-slash",
        _text(
            lambda d: d["preprocess"]["split"].update(
                ratios={"train": 0.8, "a/b": 0.1, "test": 0.1}
            )
        ),
        "split name 'a/b' must be",
    ),
    ("seed-negative", _text(_set("sample", seed=-1)), "key 'sample.seed'"),
    ("batch-rows-huge", _text(_set("serialize", batch_rows=10**12)), "key 'serialize.batch_rows'"),
    (
        "feature-name-too-long",
        _text(_feature(name="f" * 300, kind="numeric")),
        "String should have at most 200 characters",
    ),
    ("unknown-key", _text(_set("serialize", shard_size=5)), "unknown key 'serialize.shard_size'"),
    ("missing-section", _text(lambda d: d.pop("ingest")), "missing key 'ingest'"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_params(tmp_path: Path, text: str | bytes, expected: str):
    name = "other-params.yaml"  # not params.yaml: the message must name the file given
    if isinstance(text, bytes):
        (tmp_path / name).write_bytes(text)
    else:
        (tmp_path / name).write_text(text, encoding="utf-8")
    r = run_cli("ingest", "--params", name, cwd=tmp_path)
    lines = error_lines(r.stderr)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {name}: "), lines[0][:300]
    assert expected in lines[0], lines[0][:500]
    assert len(lines[0]) < 700
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


def test_many_bad_keys_one_line_each_and_bounded(tmp_path: Path):
    data = small_params_data(240)
    for i in range(30):
        data["serialize"][f"bogus_{i}"] = i
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = run_cli("ingest", cwd=tmp_path)
    lines = error_lines(r.stderr)
    assert r.returncode == 2
    assert len(lines) == 10
    assert all(
        line.startswith("error: params.yaml: unknown key 'serialize.bogus_") for line in lines[:9]
    )
    assert lines[-1] == "error: ... and 21 more"


@pytest.mark.parametrize("kind", ["folder", "missing"])
def test_params_path_itself(tmp_path: Path, kind: str):
    if kind == "folder":
        (tmp_path / "conf.yaml").mkdir()
    r = run_cli("ingest", "-p", "conf.yaml", cwd=tmp_path)
    assert r.returncode == 2
    expected = {
        "folder": "error: conf.yaml: is a folder, not a params file",
        "missing": "error: conf.yaml: file not found",
    }
    assert error_lines(r.stderr) == [expected[kind]]


def test_stage_messages_name_the_params_file_given(tmp_path: Path):
    """Stage code checks keys against the data too; those messages name --params' file as well."""
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(small_params_data(240)))
    r = run_cli("ingest", "--params", "exp.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert error_lines(r.stderr) == [
        "error: exp.yaml: key 'ingest.sources.0.path': data/sample/attributes.csv does not exist"
    ]


def test_debug_shows_the_traceback(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("dataset: [\n")
    quiet = run_cli("ingest", cwd=tmp_path)
    loud = run_cli("ingest", "--debug", cwd=tmp_path)
    env = run_cli("ingest", cwd=tmp_path, env={"DATAOPS_DEBUG": "1"})
    assert "Traceback" not in quiet.stderr
    for r in (loud, env):
        assert r.returncode == 2
        assert "Traceback (most recent call last)" in r.stderr
        assert r.stderr.rstrip().splitlines()[-1].startswith("error: params.yaml: not valid YAML")
