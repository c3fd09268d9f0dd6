"""TFDS reads our dataset directories: `tfds.builder_from_directory(DIR).as_dataset(split)` gives,
for every split, example for example, the values `dataops.load` gives, and the class names.

Needs `tensorflow-datasets` (a dev dependency); skipped where it is not installed. The
formats of `dataset_info.json` and `features.json` are also pinned, without TFDS, by the
golden files (tests/test_golden.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import dataops
from dataops import naming
from dataops.config import SerializeParams
from dataops.metadata import read_metadata
from dataops.stages.serialize import run_serialize
from dataops.tfrecord.tfds_info import OOV_NAME
from tests.support.project import GOLDEN

tfds = pytest.importorskip("tensorflow_datasets")


def _tfds_rows(directory: Path, split: str) -> dict[str, list]:
    builder = tfds.builder_from_directory(str(directory))
    out: dict[str, list] = {}
    for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        for k, v in ex.items():
            out.setdefault(k, []).append(v)
    return out


def _dataops_rows(directory: Path, split: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for batch in dataops.load(directory, split, batch_size=1000):
        for k, v in batch.items():
            vals = v.to_list() if hasattr(v, "to_list") else list(v.numpy())
            out.setdefault(k, []).extend(vals)
    return out


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and a.tolist() == b.tolist()


def _compare(directory: Path) -> int:
    meta = read_metadata(directory)
    checked = 0
    for split in meta.splits:
        got, want = _tfds_rows(directory, split.name), _dataops_rows(directory, split.name)
        assert sorted(got) == sorted(f.name for f in meta.features)
        assert sorted(want) == sorted(got)
        for name in got:
            assert len(got[name]) == len(want[name]) == split.num_examples, (split.name, name)
            for i, (g, w) in enumerate(zip(got[name], want[name], strict=True)):
                assert _same(g, w), f"split {split.name!r} row {i} feature {name!r}: {g!r} != {w!r}"
                checked += 1
    return checked


def test_tfds_reads_every_split_of_the_sample_dataset(small_tfrecords):
    meta = read_metadata(small_tfrecords)
    assert _compare(small_tfrecords) == sum(meta.num_examples.values()) * len(meta.features)
    builder = tfds.builder_from_directory(str(small_tfrecords))
    label = builder.info.features["label"]
    assert label.names == meta.feature("label").vocabulary  # `unknown: error`: no OOV class
    color = builder.info.features["color"]  # `unknown: oov`: id = vocabulary size is "[OOV]"
    assert color.names == [*meta.feature("color").vocabulary, OOV_NAME]
    assert {s: builder.info.splits[s].num_examples for s in meta.num_examples} == meta.num_examples
    assert builder.info.features["image"].shape == tuple(meta.feature("image").shape)


def test_tfds_reads_the_golden_dataset_with_its_card(tmp_path):
    d = tmp_path / "golden"
    shutil.copytree(GOLDEN, d, ignore=shutil.ignore_patterns("gzip"))
    _compare(d)
    info = tfds.builder_from_directory(str(d)).info
    assert info.description == "Three hand-made rows, one of each feature kind."
    assert info.homepage == "https://example.org/golden"
    assert info.citation == "@misc{golden, title={Golden}}"
    assert info.redistribution_info.license == "CC0-1.0"
    assert info.features["label"].names == ["a", "b", "c"]
    assert info.features["label"].doc.desc == "The class of the row."


def test_tfds_write_metadata_takes_our_directory(small_dataset, tmp_path):
    """TFDS's own tool finds exactly our shards (the indexes in index/ are not mistaken for
    shards) and writes split infos equal to ours."""
    d = tmp_path / "ds"
    shutil.copytree(small_dataset / "data" / "tfrecords", d)
    ours = json.loads((d / naming.DATASET_INFO_FILE).read_text())
    features = tfds.builder_from_directory(str(d)).info.features
    for f in (naming.DATASET_INFO_FILE, naming.FEATURES_FILE):
        (d / f).unlink()
    tfds.folder_dataset.write_metadata(data_dir=d, features=features, check_data=False)
    theirs = json.loads((d / naming.DATASET_INFO_FILE).read_text())
    assert [(s["name"], s["shardLengths"], s["numBytes"]) for s in theirs["splits"]] == [
        (s["name"], s["shardLengths"], s["numBytes"])
        for s in sorted(ours["splits"], key=lambda s: s["name"])
    ]


def test_every_feature_kind_reads_the_same(tmp_path):
    """Raw and PNG images (8- and 16-bit), float sequences, int64 tensors, bytes, in 3 shards."""
    import io

    import tensorflow as tf
    from PIL import Image

    from dataops.metadata import FeatureInfo
    from tests.support.records import write_preprocessed

    rng = np.random.default_rng(0)
    features = [
        FeatureInfo(name="raw_img", kind="image", dtype="uint8", shape=[4, 3, 3], encoding="raw"),
        FeatureInfo(name="png_img", kind="image", dtype="uint8", shape=[2, 5, 1], encoding="png"),
        FeatureInfo(name="raw16", kind="image", dtype="uint16", shape=[2, 2, 1], encoding="raw"),
        FeatureInfo(name="png16", kind="image", dtype="uint16", shape=[3, 2, 1], encoding="png"),
        FeatureInfo(name="seq", kind="sequence", dtype="float32", shape=[None], encoding="none"),
        FeatureInfo(name="t", kind="tensor", dtype="int64", shape=[3], encoding="none"),
        FeatureInfo(name="f", kind="tensor", dtype="float32", shape=[], encoding="none"),
        FeatureInfo(name="b", kind="bytes", dtype="string", shape=[], encoding="none"),
    ]
    rows = []
    for i in range(7):
        png = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (2, 5), dtype=np.uint8), "L").save(png, "PNG")
        png16 = tf.io.encode_png(rng.integers(0, 65536, (3, 2, 1), dtype=np.uint16)).numpy()
        rows.append(
            {
                "raw_img": rng.integers(0, 256, (4, 3, 3), dtype=np.uint8).tobytes(),
                "png_img": png.getvalue(),
                "raw16": rng.integers(0, 65536, 4, dtype=np.uint16).astype("<u2").tobytes(),
                "png16": png16,
                "seq": rng.normal(size=i).astype(np.float32).tolist(),
                "t": [i, -i, 2**40],
                "f": float(np.float32(i / 3)),
                "b": bytes(range(i)),
            }
        )
    pre = write_preprocessed(tmp_path / "pre", features, {"train": rows[:5], "test": rows[5:]})
    run_serialize(SerializeParams(num_shards=3), "kinds", pre, tmp_path / "kinds")
    assert len(read_metadata(tmp_path / "kinds").split("train").shards) == 3
    assert _compare(tmp_path / "kinds") == 7 * len(features)
