"""Every data kind end to end: six source formats → ingest → preprocess → serialize → TensorFlow."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from dataops.config import IngestParams, PreprocessParams, SerializeParams
from dataops.metadata import read_metadata
from dataops.stages.ingest import run_ingest
from dataops.stages.preprocess import run_preprocess
from dataops.stages.serialize import run_serialize
from dataops.tfrecord.spec import decode_batch, parse_spec
from tests.support.records import N, make_sources

FEATURES = [
    {"name": "id", "kind": "key"},
    {"name": "score", "kind": "numeric", "impute": "zero"},
    {"name": "pic", "kind": "image", "encoding": "raw", "channels": 1},
    {"name": "small", "column": "image", "kind": "image", "dtype": "float32", "size": [4, 4]},
    {"name": "png", "column": "image", "kind": "image", "encoding": "png"},
    {"name": "vec", "kind": "tensor", "shape": [3]},
    {"name": "arr", "kind": "tensor", "shape": [2, 2]},
    {"name": "text", "kind": "text", "tokenize": True},
    {"name": "seq", "kind": "sequence", "dtype": "float32"},
    {"name": "counts", "kind": "numeric", "dtype": "int64", "impute": "none"},
    {"name": "h5val", "kind": "numeric", "standardize": True},
    {"name": "label", "kind": "categorical"},
]


def test_every_kind_round_trips_from_the_sources(tmp_path):
    run_ingest(IngestParams.model_validate(make_sources(tmp_path)), tmp_path, tmp_path / "snap")
    pre = PreprocessParams.model_validate(
        {"split": {"ratios": {"train": 1.0}}, "features": FEATURES}
    )
    run_preprocess(pre, tmp_path / "snap", tmp_path / "pre")
    run_serialize(SerializeParams(), "kinds", tmp_path / "pre", tmp_path / "ds")
    meta = read_metadata(tmp_path / "ds")
    kinds = {f.name: (f.kind, f.dtype, f.shape, f.encoding) for f in meta.features}
    assert kinds["pic"] == ("image", "uint8", [8, 8, 1], "raw")
    assert kinds["small"] == ("tensor", "float32", [4, 4, 3], "none")
    assert kinds["text_ids"][0] == "sequence" and kinds["seq"] == (
        "sequence",
        "float32",
        [None],
        "none",
    )

    files = [str(tmp_path / "ds" / s.file) for s in meta.split("train").shards]
    raw = next(iter(tf.data.TFRecordDataset(files).batch(100)))
    got = decode_batch(meta, tf.io.parse_example(raw, parse_spec(meta)))
    assert [x.decode() for x in got["id"].numpy()] == [str(i) for i in range(N)]
    assert got["score"].numpy().tolist() == [0.0 if i == 3 else i * 1.5 for i in range(N)]
    pic = got["pic"].numpy()
    assert pic.shape == (N, 8, 8, 1) and pic[5].min() == pic[5].max() == 5  # grey value i
    small = got["small"].numpy()
    assert small.shape == (N, 4, 4, 3) and np.allclose(small[2], (100 + 2) / 255)
    png0 = np.asarray(
        Image.open(io.BytesIO((tmp_path / "raw" / "folder" / "dog" / "0.png").read_bytes()))
    )
    np.testing.assert_array_equal(got["png"].numpy()[0], png0)
    np.testing.assert_array_equal(got["vec"].numpy()[4], np.array([4.0, 4.5, -4.0], np.float32))
    np.testing.assert_array_equal(got["arr"].numpy()[1], np.array([[4, 5], [6, 7]], np.float32))
    assert got["text"].numpy()[7].decode() == "héllo wörld 7"
    assert got["seq"].to_list()[3] == [0.0, 1.0, 2.0]
    assert got["counts"].numpy().tolist() == [7 * i for i in range(N)]
    h = got["h5val"].numpy()
    assert abs(h.mean()) < 1e-6 and abs(h.std() - 1) < 1e-5
    assert got["label"].numpy().tolist() == [
        1 if i % 2 == 0 else 0 for i in range(N)
    ]  # even ids are dogs
    assert meta.feature("label").vocabulary == ["cat", "dog"]
