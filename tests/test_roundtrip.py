"""Round-trip property: any record of the supported feature kinds, serialized by the stage and
parsed back with `tf.io.parse_example` using the spec derived from `metadata.json`, equals the input."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataops.config import SerializeParams
from dataops.metadata import FeatureInfo, read_metadata
from dataops.stages.serialize import run_serialize
from dataops.tfrecord.spec import compression_type, parse_spec
from tests.support.records import write_preprocessed

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOAT32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)


@st.composite
def feature_infos(draw):
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    out = []
    for name in names:
        kind = draw(st.sampled_from(["tensor", "sequence", "text", "bytes"]))
        if kind == "tensor":
            shape = draw(st.lists(st.integers(1, 3), max_size=3))
            out.append(
                FeatureInfo(
                    name=name,
                    kind="tensor",
                    dtype=draw(st.sampled_from(["float32", "int64"])),
                    shape=shape,
                    encoding="none",
                )
            )
        elif kind == "sequence":
            out.append(
                FeatureInfo(
                    name=name,
                    kind="sequence",
                    dtype=draw(st.sampled_from(["float32", "int64"])),
                    shape=[None],
                    encoding="none",
                )
            )
        elif kind == "text":
            out.append(
                FeatureInfo(name=name, kind="text", dtype="string", shape=[], encoding="utf-8")
            )
        else:
            out.append(
                FeatureInfo(name=name, kind="bytes", dtype="string", shape=[], encoding="none")
            )
    return out


def value_for(f: FeatureInfo):
    if f.kind == "tensor":
        n = math.prod(f.shape)
        return st.lists(FLOAT32 if f.dtype == "float32" else INT64, min_size=n, max_size=n)
    if f.kind == "sequence":
        return st.lists(FLOAT32 if f.dtype == "float32" else INT64, max_size=8)
    if f.kind == "text":
        return st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20
        )
    return st.binary(max_size=20)


@st.composite
def datasets(draw):
    features = draw(feature_infos())
    rows = draw(
        st.lists(
            st.fixed_dictionaries({f.name: value_for(f) for f in features}), min_size=1, max_size=6
        )
    )
    return features, rows


def _same(a, b, dtype):
    a = np.asarray(a, dtype=np.float32 if dtype == "float32" else np.int64).reshape(-1)
    b = np.asarray(b).reshape(-1)
    if dtype == "float32":
        return (
            a.view(np.uint32).tolist() == b.astype(np.float32).view(np.uint32).tolist()
        )  # NaN payloads too
    return a.tolist() == b.tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), compression=st.sampled_from(["none", "gzip"]))
def test_any_record_round_trips(data, compression):
    features, rows = data
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_preprocessed(tmp / "pre", features, {"train": rows})
        run_serialize(
            SerializeParams(compression=compression, batch_rows=4), "rt", tmp / "pre", tmp / "ds"
        )
        meta = read_metadata(tmp / "ds")
        files = [str(tmp / "ds" / s.file) for s in meta.split("train").shards]
        raw = next(
            iter(tf.data.TFRecordDataset(files, compression_type=compression_type(meta)).batch(100))
        )
        parsed = tf.io.parse_example(raw, parse_spec(meta))
    for f in features:
        got = parsed[f.name]
        for i, row in enumerate(rows):
            want = row[f.name]
            if f.kind == "sequence":
                assert _same(want, got[i].numpy(), f.dtype), (f.name, i)
            elif f.kind == "tensor":
                assert list(got.shape[1:]) == f.shape
                assert _same(want, got[i].numpy(), f.dtype), (f.name, i)
            elif f.kind == "text":
                assert got[i].numpy().decode("utf-8") == want
            else:
                assert got[i].numpy() == want
