"""Feature kinds live in `dataops.features`: every kind has a class, and no other module branches on a kind."""

from __future__ import annotations

import ast
import typing
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import dataops
from dataops import config
from dataops.features.base import Batch
from dataops.features.registry import FEATURE_CLASSES, feature_for
from dataops.features.stored import STORED_CLASSES
from dataops.features.text import FIRST_TOKEN_ID, OOV_ID, PAD_ID
from dataops.metadata import FeatureKind

PACKAGE = Path(dataops.__file__).parent
FEATURE_MODELS = typing.get_args(typing.get_args(config.Feature)[0])
CONFIG_KINDS = {typing.get_args(m.model_fields["kind"].annotation)[0] for m in FEATURE_MODELS}
STORED_KINDS = set(typing.get_args(FeatureKind))

# metadata.py: FeatureInfo defines what its kinds mean on the wire (`wire`, `num_elements`).
# codec.py: `Column.kind` is the tf.train.Feature list ("float", "int64", "bytes"), not a feature kind.
ALLOWED = {"metadata.py", "codec.py"}


def test_every_feature_model_and_stored_kind_has_a_class():
    assert set(FEATURE_CLASSES) == set(FEATURE_MODELS)
    assert set(STORED_CLASSES) == STORED_KINDS
    assert CONFIG_KINDS == {"key", "numeric", "tensor", "categorical", "text", "sequence", "image"}


def _kind_branches(path: Path) -> list[str]:
    """`isinstance(x, <feature model>)` and comparisons of `.kind` with a feature kind literal."""
    models = {m.__name__ for m in FEATURE_MODELS}
    kinds = CONFIG_KINDS | STORED_KINDS
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            if names & models:
                found.append(f"{path.name}:{node.lineno}: isinstance on {sorted(names & models)}")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            on_kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
            literals = {
                c.value
                for s in sides
                for c in ast.walk(s)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
            if on_kind and literals & kinds:
                found.append(f"{path.name}:{node.lineno}: .kind compared with {sorted(literals)}")
    return found


def test_no_module_outside_features_branches_on_a_feature_kind():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "features" in path.relative_to(PACKAGE).parts or path.name in ALLOWED:
            continue
        found += _kind_branches(path)
    assert found == []


def test_the_guard_sees_a_kind_branch(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(x, info):\n"
        "    if isinstance(x, NumericFeature | TextFeature):\n"
        "        return 1\n"
        "    return info.kind == 'sequence'\n"
    )
    assert _kind_branches(bad) == [
        "bad.py:2: isinstance on ['NumericFeature', 'TextFeature']",
        "bad.py:4: .kind compared with ['sequence']",
    ]


def _batch(**columns: list) -> Batch:
    return Batch(pa.table(columns), lambda column, i: f"row {i}")


def test_token_ids_follow_the_named_constants():
    f = config.TextFeature(kind="text", name="t", tokenize=True)
    feat = feature_for(f)
    infos = feat.infos(None)
    assert [i.name for i in infos] == ["t", f.ids_name] == f.output_names == ["t", "t_ids"]
    assert infos[1].description == "token ids of 't' (0 pad, 1 out-of-vocabulary)"
    batch = _batch(t=["b a a", "c", "a z"])
    use = np.array([True, True, False])
    state = feat.finalize(feat.merge(feat.empty_partial(), feat.partial_fit(batch, use)))
    assert state == {"vocabulary": ["a", "b", "c"], "pad_id": PAD_ID, "oov_id": OOV_ID}
    out = feat.transform(_batch(t=["a z", None]), state)
    assert out["t_ids"].to_pylist() == [[FIRST_TOKEN_ID + 0, OOV_ID], []]


@pytest.mark.parametrize(
    "model",
    [
        config.CategoricalFeature(kind="categorical", name="c"),
        config.TextFeature(kind="text", name="c", tokenize=True, max_vocab=3),
    ],
)
def test_merged_partial_vocabularies_equal_one_pass(model):
    rng = np.random.default_rng(0)
    values = [" ".join(rng.choice(list("abcdefg"), size=3)) for _ in range(200)]
    use = rng.random(200) < 0.7
    feat = feature_for(model)
    whole = feat.finalize(feat.partial_fit(_batch(c=values), use))
    parts = feat.empty_partial()
    for lo in range(0, 200, 37):
        part = feat.partial_fit(_batch(c=values[lo : lo + 37]), use[lo : lo + 37])
        parts = feat.merge(parts, part)
    assert feat.finalize(parts) == whole
    assert isinstance(parts, Counter)
