"""dataops.load on real TFRecords of the small sample: exact values, slicing, shuffling, options, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import dataops
from dataops.errors import ConfigError, DatasetError
from dataops.loader import Loader


def rows(ds) -> dict[str, list]:
    """Concatenate the batches of a loaded dataset into per-feature Python lists."""
    out: dict[str, list] = {}
    for batch in ds:
        for k, v in batch.items():
            out.setdefault(k, []).extend(v.to_list() if hasattr(v, "to_list") else list(v.numpy()))
    return out


def ids(ds) -> list[str]:
    return [x.decode() for b in ds for x in b["id"].numpy()]


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_loaded_tensors_equal_preprocessed_rows(small_dataset, split):
    import tensorflow as tf

    table = pq.read_table(small_dataset / "data" / "preprocessed" / f"{split}.parquet").to_pydict()
    ds = dataops.load(small_dataset / "data" / "tfrecords", split, batch_size=37)
    spec = ds.element_spec
    assert spec["image"].shape.as_list() == [None, 32, 32, 3] and spec["image"].dtype == tf.uint8
    assert isinstance(spec["clicks"], tf.RaggedTensorSpec) and spec["label"].dtype == tf.int64
    assert spec["weight"].dtype == tf.float32 and spec["caption"].dtype == tf.string
    got = rows(ds)
    n = len(table["id"])
    assert n > 10 and all(len(v) == n for v in got.values())
    assert [x.decode() for x in got["id"]] == table["id"]
    assert [x.decode() for x in got["caption"]] == table["caption"]
    for name in ("label", "count", "color"):
        assert np.array_equal(np.array(got[name], np.int64), np.array(table[name], np.int64)), name
    for name in ("weight", "height"):  # exact float32 equality, bit for bit
        assert np.array_equal(
            np.array(got[name], np.float32).view(np.uint32),
            np.array(table[name], np.float32).view(np.uint32),
        ), name
    assert got["clicks"] == table["clicks"]
    assert got["caption_ids"] == table["caption_ids"]
    for i in range(n):  # each row's PNG, decoded on its own, equals the batch-decoded image
        assert np.array_equal(
            got["image"][i], tf.io.decode_png(table["image"][i], channels=3).numpy()
        ), i


def test_multi_shard_equals_single_shard(small_tfrecords, sharded):
    assert len(dataops.load(sharded, "train").element_spec) == 10
    for split in ("train", "validation", "test"):
        assert ids(dataops.load(sharded, split, batch_size=64)) == ids(
            dataops.load(small_tfrecords, split, batch_size=64)
        )


@pytest.mark.parametrize(
    ("expr", "lo", "hi"),
    [
        ("train[:10%]", 0, 0.10),
        ("train[10%:25%]", 0.10, 0.25),
        ("train[100:150]", 100, 150),
        ("train[-7:]", -7, None),
        ("train[:-150]", 0, -150),
        ("train[50:]", 50, None),
        ("train[0:0]", 0, 0),
    ],
)
def test_slicing_equals_slicing_the_full_stream(sharded, expr, lo, hi):
    full = ids(dataops.load(sharded, "train", batch_size=50))
    n = len(full)

    def pos(v):
        if v is None:
            return n
        if isinstance(v, float):
            return int(round(n * v))
        return v

    want = full[slice(pos(lo), pos(hi))] if not isinstance(lo, int) or lo >= 0 else full[lo:]
    got = ids(dataops.load(sharded, expr, batch_size=7))
    assert got == want
    assert Loader(sharded, expr).num_examples == len(want)


def test_split_union_is_the_concatenation(sharded):
    train = ids(dataops.load(sharded, "train", batch_size=64))
    val = ids(dataops.load(sharded, "validation", batch_size=64))
    assert ids(dataops.load(sharded, "train+validation", batch_size=64)) == train + val
    assert (
        ids(dataops.load(sharded, "validation[:5]+train[-3:]", batch_size=4))
        == val[:5] + train[-3:]
    )


def test_batching_drop_remainder_and_padding(small_tfrecords):
    ld = Loader(small_tfrecords, "test", batch_size=16, drop_remainder=True)
    sizes = [int(b["label"].shape[0]) for b in ld.dataset()]
    assert sizes == [16] * (ld.num_examples // 16) and ld.num_batches() == len(sizes)
    assert ld.element_spec["label"].shape.as_list() == [16]
    ragged = rows(dataops.load(small_tfrecords, "test", batch_size=16))["clicks"]
    padded = [
        b["clicks"].numpy()
        for b in dataops.load(small_tfrecords, "test", batch_size=16, ragged=False)
    ]
    flat = [row for b in padded for row in b]
    assert len(flat) == len(ragged)
    for got, want in zip(flat, ragged, strict=True):
        assert list(got[: len(want)]) == want and not got[len(want) :].any()


def test_shuffle_is_deterministic_per_seed_and_reshuffles_each_epoch(sharded):
    import tensorflow as tf

    opts = dict(batch_size=32, shuffle=True, seed=7, shuffle_buffer=100, repeat=3)
    a = ids(dataops.load(sharded, "train", **opts))
    tf.random.set_seed(1234)  # the global seed does not change the order
    b = ids(dataops.load(sharded, "train", **opts))
    assert a == b
    n = Loader(sharded, "train").num_examples
    epochs = [a[i * n : (i + 1) * n] for i in range(3)]
    plain = ids(dataops.load(sharded, "train", batch_size=64))
    assert all(sorted(e) == sorted(plain) for e in epochs)
    assert epochs[0] != plain and epochs[0] != epochs[1] and epochs[1] != epochs[2]
    other = ids(dataops.load(sharded, "train", **{**opts, "seed": 8}))
    assert other != a and sorted(other) == sorted(a)


def test_cache_gives_the_same_stream(sharded):
    opts = dict(batch_size=10, shuffle=True, seed=3, shuffle_buffer=40, repeat=2)
    assert ids(dataops.load(sharded, "train[:90]+test", cache=True, **opts)) == ids(
        dataops.load(sharded, "train[:90]+test", **opts)
    )


def test_features_and_supervised(small_tfrecords):
    ds = dataops.load(small_tfrecords, "test", batch_size=8, features=["label", "clicks"])
    assert set(ds.element_spec) == {"label", "clicks"}
    x, y = next(
        iter(dataops.load(small_tfrecords, "test", batch_size=8, supervised=("image", "label")))
    )
    assert x.shape == (8, 32, 32, 3) and y.shape == (8,)


def test_import_dataops_stays_light():
    code = "import sys, dataops; assert callable(dataops.__getattr__); print('tensorflow' in sys.modules, 'dvc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


def test_load_is_the_function_after_importing_the_module(small_tfrecords):
    import dataops.loader as module

    assert dataops.load is module.load and module.Loader is Loader
    assert len(ids(dataops.load(small_tfrecords, "test[:5]"))) == 5


# ---------------------------------------------------------------- errors


def copy_dataset(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_bad_split_expressions(small_tfrecords):
    with pytest.raises(
        ConfigError, match=r"has no split 'tran'.*\['train', 'validation', 'test'\]"
    ):
        Loader(small_tfrecords, "tran")
    with pytest.raises(ConfigError, match=r"bad slice bound 'x'"):
        Loader(small_tfrecords, "train[x:5]")
    with pytest.raises(ConfigError, match="cannot parse"):
        Loader(small_tfrecords, "train[1:2")


def test_missing_shard_names_the_file(small_tfrecords, tmp_path):
    d = copy_dataset(small_tfrecords, tmp_path / "ds")
    shard = next(d.glob("*-validation.tfrecord-*"))
    shard.unlink()
    with pytest.raises(DatasetError, match=rf"{shard.name}: missing"):
        dataops.load(d, "validation")
    assert len(ids(dataops.load(d, "test"))) > 0  # other splits still load


def test_truncated_shard_names_the_file(small_tfrecords, tmp_path):
    d = copy_dataset(small_tfrecords, tmp_path / "ds")
    shard = next(d.glob("*-test.tfrecord-*"))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    with pytest.raises(
        DatasetError,
        match=rf"{shard.name}: {len(data) - 100} bytes, metadata.json says {len(data)}",
    ):
        dataops.load(d, "test")


def test_corrupted_shard_names_the_file(small_tfrecords, tmp_path):
    d = copy_dataset(small_tfrecords, tmp_path / "ds")
    shard = next(d.glob("*-test.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the content hash and a record CRC change
    shard.write_bytes(bytes(data))
    with pytest.raises(
        DatasetError, match=rf"{shard.name}: sha256 [0-9a-f]{{64}}, metadata.json says"
    ):
        dataops.load(d, "test", verify="sha256")
    # the default quick check reads a shard's first and last 64 KiB: all of this small one
    with pytest.raises(DatasetError, match=rf"{shard}: first/last 64 KiB have CRC-32C"):
        dataops.load(d, "test")
    it = Loader(d, "test", batch_size=16, verify="size").iterator()  # caught while reading
    with pytest.raises(
        DatasetError,
        match=rf"^{shard}: records \d+-\d+ \(index block 0, bytes \d+-\d+\): bytes do not match their CRC-32C — the shard is corrupt$",
    ):
        for _ in it:
            pass


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not a dataset directory"):
        dataops.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"metadata.json: not found"):
        dataops.load(tmp_path / "empty")


def test_loader_package_has_no_import_cycle_and_small_modules():
    """`dataops.loading` imports only downwards (a cycle fails here), no module over 400 lines."""
    import ast

    pkg = Path(dataops.__file__).parent / "loading"
    graph: dict[str, set[str]] = {}
    for p in pkg.glob("*.py"):
        text = p.read_text()
        assert len(text.splitlines()) <= 400, p
        deps = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dataops."):
                deps.add(node.module)
        graph[f"dataops.loading.{p.stem}"] = deps
    graph.pop("dataops.loading.__init__")
    seen: set[str] = set()

    def walk(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, " -> ".join((*path, m))
        if m in seen:
            return
        for d in graph.get(m, ()):
            walk(d, (*path, m))
        seen.add(m)

    for m in graph:
        walk(m, ())
    for name in (
        "dataops.resume",
        "dataops.tfrecord.shard_index",
        "dataops.metadata",
        "dataops.stages.verify",
    ):
        src = Path(dataops.__file__).parent.joinpath(*name.split(".")[1:]).with_suffix(".py")
        assert "dataops.loader" not in src.read_text(), name  # nothing below imports the facade
