"""Serialize: shard layout and naming, metadata, compression, and TensorFlow reading it back."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from dataops import naming
from dataops.config import SerializeParams
from dataops.metadata import SCHEMA_PATH, json_schema, read_metadata
from dataops.stages.serialize import run_serialize
from dataops.stages.verify import verify_dataset
from dataops.tfrecord.spec import compression_type, decode_batch, parse_spec
from tests.support.project import small_params


def _files(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _read_all(directory, split):
    meta = read_metadata(directory)
    files = [str(directory / s.file) for s in meta.split(split).shards]
    ds = tf.data.TFRecordDataset(files, compression_type=compression_type(meta)).batch(10_000)
    out = {}
    for raw in ds:
        parsed = decode_batch(meta, tf.io.parse_example(raw, parse_spec(meta)))
        for k, v in parsed.items():
            out.setdefault(k, []).append(v)
    return meta, out


def test_small_dataset_layout(small_tfrecords):
    meta = read_metadata(small_tfrecords)
    assert [s.name for s in meta.splits] == ["train", "validation", "test"]
    for s in meta.splits:
        assert [sh.file for sh in s.shards] == [f"sample-{s.name}.tfrecord-00000-of-00001"]
        assert s.shards[0].num_examples == s.num_examples
    assert meta.preprocessing["params"]["serialize"]["compression"] == "none"
    assert meta.feature("label").vocabulary == ["circle", "cross", "square", "stripes"]
    assert verify_dataset(small_tfrecords).ok
    text = (small_tfrecords / "metadata.json").read_text()
    assert str(small_tfrecords.parent.parent) not in text  # no absolute paths


def test_values_equal_the_preprocessed_rows(small_dataset):
    pre = pq.read_table(small_dataset / "data" / "preprocessed" / "validation.parquet").to_pydict()
    meta, got = _read_all(small_dataset / "data" / "tfrecords", "validation")
    assert [x.decode() for x in got["id"][0].numpy().tolist()] == pre["id"]
    np.testing.assert_array_equal(got["weight"][0].numpy(), np.array(pre["weight"], np.float32))
    assert got["clicks"][0].to_list() == pre["clicks"]
    assert got["image"][0].shape[1:] == (32, 32, 3) and got["image"][0].dtype == tf.uint8


@pytest.mark.parametrize("deflate", ["isal", "zlib"])
@pytest.mark.parametrize("compression", ["gzip", "zlib"])
def test_compressed_shards_read_back(small_dataset, tmp_path, compression, deflate):
    params = SerializeParams(compression=compression, deflate=deflate, num_shards=3, batch_rows=50)
    run_serialize(params, "sample", small_dataset / "data" / "preprocessed", tmp_path / "ds")
    meta, got = _read_all(tmp_path / "ds", "train")
    assert meta.compression == compression
    assert [s.file for s in meta.split("train").shards] == [
        f"sample-train.tfrecord-0000{i}-of-00003" for i in range(3)
    ]
    counts = [s.num_examples for s in meta.split("train").shards]
    assert sum(counts) == meta.split("train").num_examples and max(counts) - min(counts) <= 1
    _, plain = _read_all(small_dataset / "data" / "tfrecords", "train")
    assert tf.concat(got["id"], 0).numpy().tolist() == tf.concat(plain["id"], 0).numpy().tolist()
    assert verify_dataset(tmp_path / "ds").ok


def test_serialize_is_deterministic_and_batch_size_free(small_dataset, tmp_path):
    src = small_dataset / "data" / "preprocessed"
    ref = small_dataset / "data" / "tfrecords"
    run_serialize(SerializeParams(batch_rows=7), small_params().dataset, src, tmp_path / "a")
    files = _files(ref)
    assert files == _files(tmp_path / "a")
    kinds = [k for k, _ in filter(None, map(naming.parse, files))]
    assert kinds.count("shard") == kinds.count("index") == 3  # a shard and its index per split
    for f in files:  # metadata.json too: batch sizes are not recorded, they change no byte
        assert (tmp_path / "a" / f).read_bytes() == (ref / f).read_bytes(), f


def test_target_shard_size_sets_the_shard_count(small_dataset, tmp_path):
    run_serialize(
        SerializeParams(target_shard_bytes=100_000),
        "sample",
        small_dataset / "data" / "preprocessed",
        tmp_path / "a",
    )
    meta = read_metadata(tmp_path / "a")
    train = meta.split("train")
    assert len(train.shards) == -(-train.num_bytes // 100_000)  # exact: the estimate saw every row
    assert all(s.num_bytes < 150_000 for s in train.shards)


def test_committed_schema_matches_the_model():
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == json_schema(), (
        "regenerate with: dataops schema --out dataops/schemas/metadata.schema.json"
    )


def test_metadata_validates_against_the_schema(small_tfrecords):
    import jsonschema

    jsonschema.validate(
        json.loads((small_tfrecords / "metadata.json").read_text()),
        json.loads(SCHEMA_PATH.read_text()),
    )


def test_failed_serialize_leaves_no_dataset(small_dataset, tmp_path):
    src = tmp_path / "pre"
    shutil.copytree(small_dataset / "data" / "preprocessed", src)
    (src / "test.parquet").unlink()
    from dataops.errors import DatasetError

    with pytest.raises(DatasetError, match="test.parquet: not found"):
        run_serialize(SerializeParams(), "sample", src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.incomplete-*"))


def test_gzip_members_are_deterministic_and_decompress_to_the_plain_shard(
    small_dataset, tmp_path, monkeypatch
):
    import gzip

    import dataops.tfrecord.writer as shard_writer

    # many members, compressed in parallel
    monkeypatch.setattr(shard_writer, "GZIP_MEMBER_BYTES", 10_000)
    src = small_dataset / "data" / "preprocessed"
    run_serialize(SerializeParams(compression="gzip", batch_rows=7), "sample", src, tmp_path / "a")
    run_serialize(
        SerializeParams(compression="gzip", batch_rows=500), "sample", src, tmp_path / "b"
    )
    plain = small_dataset / "data" / "tfrecords"
    for f in plain.glob("*.tfrecord-*"):
        packed = (tmp_path / "a" / f.name).read_bytes()
        assert packed == (tmp_path / "b" / f.name).read_bytes()
        assert packed.count(b"\x1f\x8b\x08") >= f.stat().st_size // 10_000  # one member per 10 kB
        assert gzip.decompress(packed) == f.read_bytes()
    assert verify_dataset(tmp_path / "a").ok


def test_compressed_datasets_get_no_tfds_files(small_dataset, tmp_path):
    """TFDS's TFRecord reader takes no GZIP/ZLIB: such a directory gets no TFDS metadata."""
    d = tmp_path / "gz"
    run_serialize(
        SerializeParams(compression="gzip"), "sample", small_dataset / "data" / "preprocessed", d
    )
    assert sorted(p.name for p in d.iterdir()) == sorted(
        [
            naming.METADATA_FILE,
            *(f"sample-{s}.tfrecord-00000-of-00001" for s in ("train", "validation", "test")),
        ]
    )


def test_tfds_files_of_the_sample_dataset(small_tfrecords):
    info = json.loads((small_tfrecords / naming.DATASET_INFO_FILE).read_text())
    meta = read_metadata(small_tfrecords)
    assert [(s["name"], s["shardLengths"]) for s in info["splits"]] == [
        (s.name, [str(sh.num_examples) for sh in s.shards]) for s in meta.splits
    ]
    feats = json.loads((small_tfrecords / naming.FEATURES_FILE).read_text())
    assert sorted(feats["featuresDict"]["features"]) == sorted(f.name for f in meta.features)
    labels = (small_tfrecords / naming.labels_file("label")).read_text().splitlines()
    assert labels == meta.feature("label").vocabulary


def test_the_dataset_card_reaches_metadata_tfds_and_info(small_dataset, tmp_path):
    from dataops.config import DatasetParams, parse_params
    from dataops.tools.summary import render_info
    from tests.support.project import small_params_data

    data = small_params_data()
    data["dataset"].update(
        description="Generated shapes.\nFour classes.",
        homepage="https://example.org/shapes",
        citation="@misc{shapes,\n  title={Shapes}\n}",
        license="CC-BY-4.0",
    )
    data["preprocess"]["features"][2]["description"] = "The shape drawn in the image."
    params = parse_params(data)
    assert params.preprocess.features[2].name == "label"
    pre = tmp_path / "pre"
    shutil.copytree(small_dataset / "data" / "preprocessed", pre)
    state = json.loads((pre / "state.json").read_text())
    state["params"]["preprocess"] = params.section("preprocess")  # as preprocess records it
    (pre / "state.json").write_text(json.dumps(state))
    run_serialize(SerializeParams(), params.dataset, pre, tmp_path / "ds")
    meta = read_metadata(tmp_path / "ds")
    assert (meta.description, meta.homepage, meta.license) == (
        "Generated shapes.\nFour classes.",
        "https://example.org/shapes",
        "CC-BY-4.0",
    )
    assert meta.feature("label").description == "The shape drawn in the image."
    ref = read_metadata(small_dataset / "data" / "tfrecords")
    assert meta.fingerprint == ref.fingerprint  # the card documents the data, it changes none
    info = json.loads((tmp_path / "ds" / naming.DATASET_INFO_FILE).read_text())
    assert info["redistributionInfo"] == {"license": "CC-BY-4.0"}
    assert info["location"] == {"urls": ["https://example.org/shapes"]}
    feats = json.loads((tmp_path / "ds" / naming.FEATURES_FILE).read_text())
    label = feats["featuresDict"]["features"]["label"]
    assert label["description"] == "The shape drawn in the image."
    text = render_info(tmp_path / "ds")
    assert "about       Generated shapes. Four classes." in text
    assert "license     CC-BY-4.0" in text
    assert "citation    @misc{shapes,\n              title={Shapes}" in text
    assert "      The shape drawn in the image." in text
    assert "      classes: 0=circle, 1=cross, 2=square, 3=stripes" in text
    assert DatasetParams().description == ""  # the card is optional


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["dataset"].update(description="x" * 10_001),
            "key 'dataset.description': String should have at most 10000 characters",
        ),
        (
            lambda d: d["preprocess"]["features"][0].update(description="x" * 1001),
            "key 'preprocess.features.0.key.description': String should have at most 1000 characters",
        ),
        (
            lambda d: d["preprocess"]["split"].update(ratios={"train-a": 0.5, "b": 0.5}),
            "split name 'train-a' must be 1-64 letters, digits or '_'",
        ),
    ],
)
def test_card_and_split_names_are_bounded(mutate, expected):
    from dataops.config import parse_params
    from dataops.errors import ConfigError
    from tests.support.project import small_params_data

    data = small_params_data()
    mutate(data)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_params(data)


@pytest.mark.parametrize(
    ("vocabulary", "classlabel"),
    [(["a", "b"], True), (["a", ""], False), (["a", " b"], False), (["a\nb", "c"], False)],
)
def test_class_names_tfds_cannot_hold_make_a_plain_tensor(vocabulary, classlabel):
    """TFDS reads `<feature>.labels.txt` stripped, without empty lines: names it would shift
    are not written; the feature is an int64 Tensor for TFDS instead."""
    from dataops.metadata import DatasetMetadata, FeatureInfo
    from dataops.tfrecord.tfds_info import feature_json

    f = FeatureInfo(
        name="c", kind="tensor", dtype="int64", shape=[], encoding="none", vocabulary=vocabulary
    )
    meta = DatasetMetadata(
        name="x", fingerprint="0", features=[f], splits=[], preprocessing={}, inputs={}
    )
    out = feature_json(meta, f)
    assert ("classLabel" in out) == classlabel
    if not classlabel:
        assert out["tensor"] == {"dtype": "int64", "encoding": "none", "shape": {}}
