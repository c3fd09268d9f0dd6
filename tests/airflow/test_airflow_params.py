"""Trigger-form values → params.yaml: validated first, comments and layout kept, never half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dataops.airflow.params import apply_overrides, form_fields, overrides_from_conf, tunable_keys
from dataops.config import load_params
from dataops.errors import ConfigError
from tests.support.project import REPO


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_every_scalar_leaf_is_a_field_with_the_current_value(workspace):
    fields = form_fields(workspace)
    data = yaml.safe_load((workspace / "params.yaml").read_text())
    for key in tunable_keys(data):
        node = data
        for k in key.path:
            node = node[k]
        assert fields[key.name]["default"] == node
    assert fields["validate__label_range__max"]["type"] == "integer"
    assert fields["dataset__on_error"]["enum"] == ["fail", "skip"]


def test_apply_changes_only_the_given_keys_and_keeps_comments(workspace):
    before = (workspace / "params.yaml").read_text()
    changes = apply_overrides(
        workspace,
        overrides_from_conf(
            {"sample__num_examples": 321, "serialize.compression": "gzip"}, workspace
        ),
    )
    assert changes == [
        "sample.num_examples: 2000 -> 321",
        "serialize.compression: 'none' -> 'gzip'",
    ]
    after = (workspace / "params.yaml").read_text()
    assert after.splitlines()[0] == before.splitlines()[0] and after.startswith("#")
    diff = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert diff == [
        ("  num_examples: 2000", "  num_examples: 321"),
        ("  compression: none", "  compression: gzip"),
    ]
    p = load_params(workspace / "params.yaml")
    assert p.sample.num_examples == 321 and p.serialize.compression == "gzip"


def test_same_values_change_nothing(workspace):
    before = (workspace / "params.yaml").read_bytes()
    assert (
        apply_overrides(
            workspace,
            overrides_from_conf(
                {"sample__num_examples": 2000, "preprocess__split__ratios__train": 0.8}, workspace
            ),
        )
        == []
    )
    assert (workspace / "params.yaml").read_bytes() == before


def test_invalid_values_are_refused_with_the_validation_message_and_the_file_untouched(workspace):
    before = (workspace / "params.yaml").read_bytes()
    with pytest.raises(ConfigError) as err:
        apply_overrides(
            workspace, overrides_from_conf({"preprocess__split__ratios__train": 0.5}, workspace)
        )
    assert "key 'preprocess.split.ratios': split ratios must sum to 1, they sum to 0.7" in str(
        err.value
    )
    with pytest.raises(
        ConfigError,
        match=r"key 'sample.num_examples': Input should be greater than or equal to 1 \(got 0\)",
    ):
        apply_overrides(workspace, {("sample", "num_examples"): 0})
    assert (workspace / "params.yaml").read_bytes() == before


def test_a_value_that_looks_like_a_shell_command_is_only_data(workspace):
    with pytest.raises(ConfigError, match=r"key 'dataset.name': String should match pattern"):
        apply_overrides(workspace, {("dataset", "name"): "x; rm -rf /"})


def test_unknown_conf_keys_are_named(workspace):
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['sample__nope'\]"):
        overrides_from_conf({"sample__nope": 1}, workspace)


def test_form_fields_are_bounded(workspace):
    fields = form_fields(workspace)
    for name, f in fields.items():
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        if "string" in types and "enum" not in f:
            assert f["maxLength"] <= 200 and f["pattern"], name
        if "integer" in types:
            assert "minimum" in f and "maximum" in f, name
    # the range the widget moves a value into is said next to the field
    assert fields["sample__num_examples"]["minimum"] == 1
    assert fields["sample__num_examples"]["description"].endswith("Allowed: ≥ 1, ≤ 10000000.")
    assert fields["sample__image_size"]["description"].endswith("Allowed: ≥ 4, ≤ 512.")


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"ingest__key": "x" * 1_000_000}, "key 'ingest.key': 1000000 characters, at most 200"),
        (
            {"ingest__key": "id\u202egpj.exe"},
            "key 'ingest.key': control or bidi-override character U+202E at position 2",
        ),
        ({"validate__label_range__feature": "a\u2066b"}, "character U+2066 at position 1"),
        ({"ingest__key": "a\nb"}, "character U+000A at position 1"),
        ({"ingest__key": "a\x85b"}, "character U+0085 at position 1"),
        ({"sample__num_examples": 0}, "key 'sample.num_examples': 0 is below the minimum 1"),
        ({"sample__seed": 2**60}, f"key 'sample.seed': {2**60} is above the maximum {2**53 - 1}"),
        ({"sample__seed": [1, 2]}, "key 'sample.seed': expected a single value, got a list"),
    ],
)
def test_a_rest_trigger_cannot_bypass_the_form_bounds(workspace, conf, message):
    before = (workspace / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match="run conf refused") as err:
        apply_overrides(workspace, overrides_from_conf(conf, workspace))
    assert message in str(err.value)
    assert len(str(err.value)) < 400  # an oversized value is not echoed back
    assert (workspace / "params.yaml").read_bytes() == before


@pytest.mark.parametrize("name", ["a..b", "v1..2"])  # the config pattern allows them
def test_a_dataset_name_git_cannot_tag_is_refused_before_any_work(workspace, name):
    before = (workspace / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"key 'dataset.name': .* cannot name a git tag"):
        apply_overrides(workspace, {("dataset", "name"): name})
    assert (workspace / "params.yaml").read_bytes() == before


def test_writing_the_form_leaves_other_yaml_dumps_in_the_process_alone(workspace):
    """The form writes None as `null`; DVC, in the same process, writes dvc.lock with ruamel's
    own round-trip dumper, which must keep writing None as an empty value (it did not: the
    representer was added to ruamel's class, and a later in-process `dvc.lock` differed)."""
    import io

    from ruamel.yaml import YAML

    def dump() -> str:
        out = io.StringIO()
        YAML().dump({"level": None}, out)
        return out.getvalue()

    before = dump()
    apply_overrides(workspace, overrides_from_conf({"sample__num_examples": 321}, workspace))
    assert dump() == before == "level:\n"
