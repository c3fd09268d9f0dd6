"""The exported preprocessor maps raw source rows to exactly the stored features."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.project import run_cli


@pytest.fixture(scope="module")
def exported(small_dataset: Path, tmp_path_factory) -> Path:
    from dataops.tools.serving import export_preprocessor

    out = tmp_path_factory.mktemp("serving") / "preprocessor"
    r = export_preprocessor(small_dataset / "data" / "tfrecords", out)
    assert r.out == out and (out / "saved_model.pb").is_file()
    assert r.inputs == [
        "caption",
        "clicks",
        "color",
        "count",
        "height",
        "id",
        "image",
        "label",
        "weight",
    ]
    assert r.outputs == sorted([*r.inputs, "caption_ids"])
    return out


def _raw_rows(raw: Path) -> dict[str, dict]:
    """Every row of the sample source as a user holds it: CSV fields, JSON lines, PNG bytes."""
    rows: dict[str, dict] = {}
    with open(raw / "attributes.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["id"]] = {
                "weight": float(r["weight"]) if r["weight"] else math.nan,
                "height": float(r["height"]) if r["height"] else math.nan,
                "count": int(r["count"]),
                "color": r["color"],
            }
    for line in (raw / "captions.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows[str(r["id"])].update(caption=r["caption"], clicks=r["clicks"])
    for png in sorted((raw / "images").glob("*/*.png")):
        rows[png.stem].update(image=png.read_bytes(), label=png.parent.name)
    return rows


def _batch(tf, rows: list[dict], keys: list[str]) -> dict:
    return {
        "id": tf.constant(keys),
        "weight": tf.constant([r["weight"] for r in rows], tf.float64),
        "height": tf.constant([r["height"] for r in rows], tf.float64),
        "count": tf.constant([r["count"] for r in rows], tf.int64),
        "color": tf.constant([r["color"] for r in rows]),
        "label": tf.constant([r["label"] for r in rows]),
        "caption": tf.constant([r["caption"] for r in rows]),
        "clicks": tf.ragged.constant([r["clicks"] for r in rows], tf.int64, ragged_rank=1),
        "image": tf.constant([r["image"] for r in rows]),
    }


def test_held_out_raw_rows_give_the_stored_features_bit_for_bit(small_dataset, exported):
    """The test split (not fitted on) through the SavedModel equals `dataops.load`, value for
    value and bit for bit: floats compared as their bytes, images pixel for pixel."""
    import tensorflow as tf

    import dataops
    from dataops.tools.serving import load_preprocessor

    serve = load_preprocessor(exported)
    raw = _raw_rows(small_dataset / "data" / "sample")
    stored = next(iter(dataops.load(small_dataset / "data" / "tfrecords", "test", batch_size=1000)))
    keys = [k.decode() for k in stored["id"].numpy()]
    assert len(keys) >= 10
    # The sample has missing weights/heights; make sure imputation is exercised.
    assert any(math.isnan(raw[k]["weight"]) or math.isnan(raw[k]["height"]) for k in raw)
    got = serve(_batch(tf, [raw[k] for k in keys], keys))
    assert sorted(got) == sorted(stored)
    for name, want in stored.items():
        have = got[name]
        if isinstance(want, tf.RaggedTensor):
            assert have.to_list() == want.to_list(), name
            continue
        assert have.dtype == want.dtype and have.shape == want.shape, name
        if want.dtype == tf.string:
            assert have.numpy().tolist() == want.numpy().tolist(), name
        else:
            assert have.numpy().tobytes() == want.numpy().tobytes(), name


def test_the_savedmodel_loads_with_tensorflow_alone(small_dataset, exported):
    """No custom objects: a Python without `dataops` on its path loads and runs it."""
    code = (
        "import sys, tensorflow as tf\n"
        "assert 'dataops' not in sys.modules\n"
        f"m = tf.saved_model.load({str(exported)!r})\n"
        "out = m.serve({'id': tf.constant(['k']), 'weight': tf.constant([float('nan')], tf.float64),"
        " 'height': tf.constant([1.0], tf.float64), 'count': tf.constant([3], tf.int64),"
        " 'color': tf.constant(['no such color']), 'label': tf.constant(['circle']),"
        " 'caption': tf.constant(['  A  red, zzz!']),"
        " 'clicks': tf.ragged.constant([[1, 2]], tf.int64),"
        " 'image': tf.constant([open(sys.argv[1], 'rb').read()])})\n"
        "print(out['caption'].numpy()[0].decode(), out['caption_ids'].to_list()[0][-2:],"
        " out['color'].numpy()[0], out['image'].shape)\n"
    )
    png = sorted((small_dataset / "data" / "sample" / "images").glob("*/*.png"))[0]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-c", code, str(png)], capture_output=True, text=True, cwd="/", env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("a red, zzz! ")
    # 'zzz' is out of vocabulary (id 1); '!' likewise; the color is out of vocabulary (5 colors).
    assert "[1, 1] 5 (1, 32, 32, 3)" in r.stdout, r.stdout


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"]),
        max_size=40,
    )
)
def test_text_normalization_and_tokens_match_python(text):
    """For NFKC-stable text (the one restriction: core TensorFlow has no NFKC op), the serving
    normalization and tokenization equal `normalize_text` and `tokenize` exactly."""
    import tensorflow as tf

    from dataops.config import TextFeature
    from dataops.features.text import normalize_text, tf_normalize_text, tf_tokenize, tokenize

    if not unicodedata.is_normalized("NFKC", text) or "\u0130" in text:
        return  # documented restrictions (NFKC; U+0130 lowercases to two code points)
    f = TextFeature(name="t", kind="text", tokenize=True)
    got = tf_normalize_text(tf.constant([text]), f)
    want = normalize_text(text, f)
    assert got.numpy()[0].decode() == want
    assert [t.decode() for t in tf_tokenize(got).to_list()[0]] == tokenize(want)


def test_cli_export_preprocessor(small_dataset, tmp_path):
    out = tmp_path / "pp"
    r = run_cli(
        "export-preprocessor",
        str(small_dataset / "data" / "tfrecords"),
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "saved_model.pb").is_file()
    r = run_cli(
        "export-preprocessor", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), cwd=tmp_path
    )
    assert r.returncode == 1
    assert "nothing/metadata.json: not found" in r.stderr
    assert not (tmp_path / "x").exists()


def test_numeric_serving_fn_imputes_and_standardizes_like_transform():
    """A direct check of one kind: NaN -> mean, then (v - mean) / std in float64, then float32."""
    import tensorflow as tf

    from dataops.config import NumericFeature
    from dataops.features.registry import feature_for

    feat = feature_for(NumericFeature(name="w", kind="numeric", impute="mean", standardize=True))
    state = {"count": 3, "mean": 1.2345678901234, "std": 0.3333333333333}
    x = np.array([np.nan, 0.1, 1e9, -3.7], np.float64)
    got = feat.serving_fn(state)(tf.constant(x))["w"].numpy()
    v = np.where(np.isnan(x), state["mean"], x)
    want = ((v - state["mean"]) / state["std"]).astype(np.float32)
    assert got.tobytes() == want.tobytes()


def test_every_feature_kind_has_a_serving_part():
    from dataops.features.base import Feature
    from dataops.features.registry import FEATURE_CLASSES

    for cls in FEATURE_CLASSES.values():
        assert cls.serving_spec is not Feature.serving_spec, cls.__name__
        assert cls.serving_fn is not Feature.serving_fn, cls.__name__


def test_serving_cannot_normalize_unicode_the_documented_restriction():
    """Core TensorFlow has no NFKC op: a compatibility character (the 'fi' ligature) is kept
    where the pipeline folds it. This pins the restriction the module doc states."""
    import tensorflow as tf

    from dataops.config import TextFeature
    from dataops.features.text import normalize_text, tf_normalize_text

    f = TextFeature(name="t", kind="text")
    assert normalize_text("\ufb01ne", f) == "fine"
    assert tf_normalize_text(tf.constant(["\ufb01ne"]), f).numpy()[0].decode() == "\ufb01ne"
