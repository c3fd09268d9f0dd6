"""The batch encoder against protobuf's serializer, TensorFlow's parser and TFRecord reader."""

from __future__ import annotations

import math
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dataops.tfrecord.codec import (
    Column,
    EncodedBatch,
    FramingError,
    encode_batch,
    iter_records,
    masked_crc32c,
)
from tests.support.project import REPO

tf = pytest.importorskip("tensorflow")

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SPECIAL_INTS = st.sampled_from([0, 1, -1, 127, 128, 2**31, 2**63 - 1, -(2**63), -(2**31)])
FLOAT32 = st.floats(width=32, allow_nan=False) | st.sampled_from(
    [math.nan, math.inf, -math.inf, -0.0, 3.4028234663852886e38, 1e-45]
)
KEYS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
KINDS = ["bytes", "text", "float_fixed", "int64_fixed", "float_var", "int64_var"]


@st.composite
def batches(draw):
    """A schema of 1-5 features of any supported kind and 1-6 rows of values."""
    keys = draw(st.lists(KEYS, min_size=1, max_size=5, unique_by=lambda k: k.encode()))
    n = draw(st.integers(1, 6))
    features = []
    for key in keys:
        kind = draw(st.sampled_from(KINDS))
        if kind == "bytes":
            rows = draw(st.lists(st.binary(max_size=300), min_size=n, max_size=n))
        elif kind == "text":
            rows = [
                s.encode() for s in draw(st.lists(st.text(max_size=20), min_size=n, max_size=n))
            ]
        elif kind == "float_fixed":
            width = draw(st.integers(0, 6))
            rows = draw(
                st.lists(st.lists(FLOAT32, min_size=width, max_size=width), min_size=n, max_size=n)
            )
        elif kind == "int64_fixed":
            width = draw(st.integers(0, 4))
            rows = draw(
                st.lists(
                    st.lists(INT64 | SPECIAL_INTS, min_size=width, max_size=width),
                    min_size=n,
                    max_size=n,
                )
            )
        elif kind == "float_var":
            rows = draw(st.lists(st.lists(FLOAT32, max_size=7), min_size=n, max_size=n))
        else:
            rows = draw(
                st.lists(st.lists(INT64 | SPECIAL_INTS, max_size=7), min_size=n, max_size=n)
            )
        features.append((key, kind, rows))
    return n, features


def to_columns(features) -> list[Column]:
    cols = []
    for key, kind, rows in features:
        lens = [1 if kind in ("bytes", "text") else len(r) for r in rows]
        if kind in ("bytes", "text"):
            lens = [len(r) for r in rows]
            values = np.frombuffer(b"".join(rows), dtype=np.uint8)
        elif kind.startswith("float"):
            values = np.array([v for r in rows for v in r], dtype=np.float32)
        else:
            values = np.array([v for r in rows for v in r], dtype=np.int64)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        wire = "bytes" if kind in ("bytes", "text") else kind.split("_")[0]
        cols.append(Column(key, wire, values, offsets))
    return cols


def proto_bytes(features, i: int) -> bytes:
    feature = {}
    for key, kind, rows in features:
        v = rows[i]
        if kind in ("bytes", "text"):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
        elif kind.startswith("float"):
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=v))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=v))
    # Map entries in the order of their keys' bytes, as C++ protobuf's deterministic
    # serialization sorts them. Python protobuf's upb backend puts a key after every key it
    # is a prefix of ("caption_ids" before "caption"), so the whole Example is not
    # serialized in one call: each entry is (one single-entry `Features` message each, whose
    # concatenation is the `Features` message with those entries in that order).
    body = b"".join(
        tf.train.Features(feature={k: feature[k]}).SerializeToString(deterministic=True)
        for k in sorted(feature, key=str.encode)
    )
    return b"\n" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_reference_serialization_is_protobufs_when_no_key_prefixes_another():
    feature = {
        k: tf.train.Feature(int64_list=tf.train.Int64List(value=[i, 300 * i]))
        for i, k in enumerate(["b", "a", "é", "c2"])
    }
    features = [(k, "int64_list", [list(f.int64_list.value)]) for k, f in feature.items()]
    whole = tf.train.Example(features=tf.train.Features(feature=feature))
    assert proto_bytes(features, 0) == whole.SerializeToString(deterministic=True)
    assert tf.train.Example.FromString(proto_bytes(features, 0)) == whole


def parse_spec(features):
    spec = {}
    for key, kind, rows in features:
        if kind in ("bytes", "text"):
            spec[key] = tf.io.FixedLenFeature([], tf.string)
        elif kind.endswith("fixed"):
            spec[key] = tf.io.FixedLenFeature(
                [len(rows[0])], tf.float32 if kind.startswith("float") else tf.int64
            )
        else:
            spec[key] = tf.io.RaggedFeature(
                dtype=tf.float32 if kind.startswith("float") else tf.int64,
                row_splits_dtype=tf.int64,
            )
    return spec


def f32_bits(values) -> list[int]:
    return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batches())
@example((1, [("0", "bytes", [b""]), ("00", "bytes", [b""])]))  # a key that prefixes another
def test_encoder_equals_protobuf_and_parses_back(batch):
    n, features = batch
    enc = encode_batch(to_columns(features))
    assert enc.num_records == n
    got = enc.examples()
    for i in range(n):
        assert got[i] == proto_bytes(features, i), (
            f"record {i} differs from protobuf's deterministic serialization"
        )
    parsed = tf.io.parse_example(tf.constant(got), parse_spec(features))
    for key, kind, rows in features:
        value = parsed[key]
        if kind in ("bytes", "text"):
            assert value.numpy().tolist() == rows
        elif kind.endswith("fixed"):
            back = value.numpy().reshape(n, -1)
            if kind.startswith("float"):
                assert [f32_bits(r) for r in back] == [f32_bits(r) for r in rows]
            else:
                assert back.tolist() == [list(r) for r in rows]
        else:
            back = value.to_list()
            if kind.startswith("float"):
                assert [f32_bits(r) for r in back] == [f32_bits(r) for r in rows]
            else:
                assert back == rows
    # Framing: each record is [len][crc(len)][example][crc(example)].
    data = enc.data.tobytes()
    for i in range(n):
        a, b = int(enc.starts[i]), int(enc.starts[i + 1])
        (length,) = struct.unpack("<Q", data[a : a + 8])
        assert length == b - a - 16
        assert struct.unpack("<I", data[a + 8 : a + 12])[0] == masked_crc32c(data[a : a + 8])
        assert struct.unpack("<I", data[b - 4 : b])[0] == masked_crc32c(data[a + 12 : b - 4])


def _write(enc: EncodedBatch, path: Path) -> Path:
    path.write_bytes(enc.data.tobytes())
    return path


def _sample_features(n: int, blob: int) -> list:
    rng = np.random.default_rng(7)
    return [
        (
            "image",
            "bytes",
            [rng.integers(0, 256, blob + i, dtype=np.uint8).tobytes() for i in range(n)],
        ),
        ("label", "int64_fixed", [[int(x)] for x in rng.integers(-5, 10**12, n)]),
        (
            "emb",
            "float_fixed",
            [rng.standard_normal(4).astype(np.float32).tolist() for _ in range(n)],
        ),
        ("ids", "int64_var", [rng.integers(0, 2**40, i % 5).tolist() for i in range(n)]),
        ("ключ", "text", [f"row {i} ✓".encode() for i in range(n)]),
    ]


@pytest.mark.parametrize("blob", [3, 5000], ids=["byte-gather", "segment-copy"])
def test_both_assembly_paths_match_protobuf(blob):
    features = _sample_features(40, blob)
    enc = encode_batch(to_columns(features))
    assert enc.examples() == [proto_bytes(features, i) for i in range(40)]


def test_tfrecord_dataset_reads_the_framing_and_checks_crcs(tmp_path):
    features = _sample_features(25, 100)
    enc = encode_batch(to_columns(features))
    path = _write(enc, tmp_path / "ok.tfrecord")
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == enc.examples()
    assert list(iter_records(str(path))) == enc.examples()
    # One flipped byte inside record 3's payload: TensorFlow's reader and ours both refuse it.
    bad = bytearray(enc.data.tobytes())
    bad[int(enc.starts[3]) + 20] ^= 0xFF
    (tmp_path / "bad.tfrecord").write_bytes(bytes(bad))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(tmp_path / "bad.tfrecord")))
    with pytest.raises(FramingError, match="data CRC mismatch in record 3"):
        list(iter_records(str(tmp_path / "bad.tfrecord")))


def test_mismatched_row_counts_name_the_feature():
    cols = to_columns(_sample_features(4, 3))
    short = Column("short", "int64", np.arange(3, dtype=np.int64), np.arange(4, dtype=np.int64))
    with pytest.raises(ValueError, match="feature 'short' has 3 rows, expected 4"):
        encode_batch([*cols, short])


def _bench_module():
    """`bench/run.py` as a module (it generates the benchmark's preprocessed data)."""
    import importlib.util
    import sys

    name = "dataops_bench_run"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_serialize_memory_is_bounded_by_the_batch(tmp_path):
    """Serializing 8x the rows peaks at about the same traced (Python/NumPy) memory."""
    bench = _bench_module()
    peaks = {}
    for n in (4096, 8 * 4096):
        pre = bench.make_preprocessed("small", n, tmp_path / f"pre-{n}")
        tracemalloc.start()
        bench.dataops_serialize(pre, tmp_path / f"out-{n}", batch_rows=512)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[8 * 4096] <= 1.3 * peaks[4096], (
        f"peak traced memory grew from {peaks[4096]} to {peaks[8 * 4096]} bytes with 8x the rows"
    )


def test_serialize_peak_rss_does_not_grow_with_the_split(tmp_path):
    """Peak RSS (VmHWM, in a fresh process each) of serialize at 8x the image rows stays
    within 1.2x: it also sees Arrow's allocations, which tracemalloc does not."""
    bench = _bench_module()
    peaks = []
    for n in (512, 8 * 512):
        pre = bench.make_preprocessed("image", n, tmp_path / f"pre-{n}", row_group=256)
        job = {"pre": str(pre), "out": str(tmp_path / f"out-{n}"), "batch_rows": 256}
        peaks.append(bench._run_worker("serialize", [job])[0]["peak_rss_kib"])
    assert peaks[1] <= 1.2 * peaks[0], (
        f"peak RSS {peaks[0]} KiB at 512 image rows, {peaks[1]} KiB at 4096"
    )
