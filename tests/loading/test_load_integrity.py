"""The loader never returns wrong data silently: each corruption of a published dataset, in
every read mode, ends in one DatasetError line naming the file (and the records) to blame.

Modes: `indexed` (the default unshuffled read, block by block through the shard index),
`shuffled`, `cached` (records held in memory), and `plain` (a dataset whose metadata.json
lists no shard index — written before indexes, or compressed — read by `TFRecordDataset`).
The dataset is hand-made with records of one fixed size, so that a shard of another split
can take a validation shard's place without changing its size.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import dataops
import dataops.tfrecord.shard_index as shard_index
from dataops.config import SerializeParams
from dataops.errors import DatasetError
from dataops.loader import Loader
from dataops.metadata import FeatureInfo, read_metadata
from dataops.stages.serialize import run_serialize
from tests.support.records import write_preprocessed

FEATURES = [
    FeatureInfo(name="id", kind="text", dtype="string", shape=[], encoding="utf-8"),
    FeatureInfo(name="x", kind="tensor", dtype="float32", shape=[1024], encoding="none"),
]
COUNTS = {"train": 200, "validation": 80, "test": 80}  # 2 shards a split, ~164 KiB each

MODES = {
    "indexed": {},
    "shuffled": {"shuffle": True, "seed": 3, "shuffle_buffer": 16},
    "cached": {"cache": True},
    "plain": {},
}


def _rows(split: str, n: int) -> list[dict]:
    rng = np.random.default_rng(len(split))
    width = 15 - len(split) - 1  # every id has 15 characters: every record has one size
    return [
        {"id": f"{split}-{i:0{width}d}", "x": rng.random(1024, dtype=np.float32)} for i in range(n)
    ]


def _build(out: Path, tmp: Path) -> Path:
    pre = write_preprocessed(tmp, FEATURES, {s: _rows(s, n) for s, n in COUNTS.items()})
    run_serialize(SerializeParams(num_shards=2), "uni", pre, out)
    return out


@pytest.fixture(scope="module")
def uniform(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("uniform")
    return _build(tmp / "ds", tmp / "pre")


@pytest.fixture(scope="module")
def blocky(tmp_path_factory) -> Path:
    """The same dataset with 4 kB index blocks (about one record each)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(shard_index, "BLOCK_BYTES", 4000)
    tmp = tmp_path_factory.mktemp("blocky")
    try:
        return _build(tmp / "ds", tmp / "pre")
    finally:
        mp.undo()


def _copy(src: Path, dest: Path, mode: str) -> Path:
    """A copy of the dataset; in `plain` mode its metadata.json lists no shard index."""
    shutil.copytree(src, dest)
    if mode == "plain":
        _edit_metadata(
            dest, lambda m: [sh.update(index=None) for sp in m["splits"] for sh in sp["shards"]]
        )
    return dest


def _edit_metadata(d: Path, edit) -> None:
    path = d / "metadata.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta, indent=2, sort_keys=True))


def _shard(d: Path, split: str, i: int = 0):
    return read_metadata(d).split(split).shards[i]


def _read_all(d: Path, split: str, **options) -> list[str]:
    """Every id the loader yields, through its iterator (which names a failing file)."""
    return [
        x.decode()
        for b in Loader(d, split, batch_size=8, **options).iterator()
        for x in b["id"].numpy()
    ]


def _fails(match: str, d: Path, split: str, **options) -> DatasetError:
    with pytest.raises(DatasetError, match=match) as info:
        _read_all(d, split, **options)
    assert "\n" not in str(info.value)  # one line
    return info.value


def _ids(split: str) -> list[str]:
    return [r["id"] for r in _rows(split, COUNTS[split])]


@pytest.mark.parametrize("mode", MODES)
def test_intact_dataset_reads_exactly(uniform, tmp_path, mode):
    d = _copy(uniform, tmp_path / "ds", mode)
    got = _read_all(d, "validation", **MODES[mode])
    assert (got if mode != "shuffled" else sorted(got)) == _ids("validation")


@pytest.mark.parametrize("mode", MODES)
def test_count_lowered_by_one_in_metadata(uniform, tmp_path, mode):
    """A shard's count (and its split's, so metadata.json still adds up) lowered by one."""
    d = _copy(uniform, tmp_path / "ds", mode)
    sh = _shard(d, "validation", 0)

    def lower(m):
        split = next(s for s in m["splits"] if s["name"] == "validation")
        split["num_examples"] -= 1
        split["shards"][0]["num_examples"] -= 1

    _edit_metadata(d, lower)
    shard = d / sh.file
    n = sh.num_examples
    if mode == "plain":  # no index to compare with: the shard is counted as it is read
        _fails(
            rf"^{shard}: holds {n} examples, metadata.json says {n - 1}$",
            d,
            "validation",
            **MODES[mode],
        )
    else:  # the index header disagrees: refused when the loader is built
        with pytest.raises(
            DatasetError,
            match=rf"^{shard}: metadata.json says {n - 1} examples, its index {sh.index.file} lists {n}$",
        ):
            Loader(d, "validation", **MODES[mode])


def test_split_total_disagreeing_with_its_shards(uniform, tmp_path):
    d = _copy(uniform, tmp_path / "ds", "indexed")
    _edit_metadata(
        d, lambda m: m["splits"][1].update(num_examples=m["splits"][1]["num_examples"] - 1)
    )
    with pytest.raises(
        DatasetError,
        match=r"^metadata.json: split 'validation' says 79 examples, its shards list 80$",
    ):
        dataops.load(d, "validation", verify="none")


def _replace_with_test_shard(d: Path, with_index: bool) -> tuple[Path, Path]:
    """The first test shard (and, with_index, its index) copied over the first validation one."""
    val, test = _shard(d, "validation"), _shard(d, "test")
    assert val.num_bytes == test.num_bytes  # same size: the size check cannot see it
    shutil.copyfile(d / test.file, d / val.file)
    if with_index and val.index is not None:
        assert val.index.num_bytes == test.index.num_bytes
        shutil.copyfile(d / test.index.file, d / val.index.file)
    return d / val.file, d / (val.index.file if val.index is not None else "")


@pytest.mark.parametrize("with_index", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_same_size_shard_of_another_split(uniform, tmp_path, mode, with_index):
    d = _copy(uniform, tmp_path / "ds", mode)
    shard, _ = _replace_with_test_shard(d, with_index)
    # the quick check (the default) reads the shard's first and last 64 KiB
    with pytest.raises(
        DatasetError,
        match=rf"^{shard}: first/last 64 KiB have CRC-32C [0-9a-f]{{8}}, metadata.json says [0-9a-f]{{8}} — the shard was replaced or is corrupted$",
    ):
        Loader(d, "validation", **MODES[mode])
    with pytest.raises(DatasetError, match=rf"^{shard}: sha256 [0-9a-f]{{64}}, metadata.json says"):
        Loader(d, "validation", verify="sha256", **MODES[mode])


@pytest.mark.parametrize("mode", MODES)
def test_flipped_index_byte_blames_the_index(uniform, tmp_path, mode):
    d = _copy(uniform, tmp_path / "ds", mode)
    sh = read_metadata(uniform).split("validation").shards[0]  # the index as written
    index = d / sh.index.file
    data = bytearray(index.read_bytes())
    data[shard_index.HEADER.size + 8 * 3] ^= 0x10  # record 3's offset
    index.write_bytes(bytes(data))
    if mode == "plain":  # metadata.json lists no index: it is not read, the data is exact
        assert _read_all(d, "validation") == _ids("validation")
        return
    with pytest.raises(
        DatasetError,
        match=rf"^{index}: sha256 [0-9a-f]{{64}}, metadata.json says {sh.index.sha256} — the shard index is corrupted$",
    ):
        Loader(d, "validation", **MODES[mode])
    # with size-only checks it is found when the block is read, and still put on the index
    _fails(
        rf"^{index}: sha256 [0-9a-f]{{64}}, metadata.json says {sh.index.sha256} — the shard index is corrupt \(found reading records 0-\d+ \(index block 0.*\) of {d / sh.file}\)$",
        d,
        "validation",
        verify="size",
        **MODES[mode],
    )


@pytest.mark.parametrize("mode", MODES)
def test_corrupt_record_names_shard_and_record(uniform, tmp_path, mode):
    d = _copy(uniform, tmp_path / "ds", mode)
    sh = _shard(d, "validation", 1)
    shard = d / sh.file
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    if mode == "plain":
        match = rf"^{shard}: (data CRC mismatch in record \d+ at byte \d+|corrupted length at byte \d+ \(record \d+\))$"
    else:
        match = rf"^{shard}: records 0-39 \(index block 0, bytes 0-{sh.num_bytes}\): bytes do not match their CRC-32C — the shard is corrupt$"
    _fails(match, d, "validation", **MODES[mode])  # the middle: beyond the edges' 64 KiB


@pytest.mark.parametrize("mode", ["indexed", "shuffled"])
def test_bare_tf_data_stream_names_the_shard(uniform, tmp_path, mode):
    """Iterated as a plain `tf.data.Dataset` (not through the loader's iterator), the
    TensorFlow error still carries the one line naming the shard and its records."""
    import tensorflow as tf

    d = _copy(uniform, tmp_path / "ds", mode)
    shard = d / _shard(d, "validation", 1).file
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(tf.errors.UnknownError, match=rf"DatasetError: {shard}: records 0-39 "):
        for _ in dataops.load(d, "validation", verify="size", **MODES[mode]):
            pass


@pytest.mark.parametrize("mode", ["indexed", "shuffled", "plain"])
def test_rewrite_during_iteration(blocky, tmp_path, mode):
    d = _copy(blocky, tmp_path / "ds", mode)
    it = Loader(d, "train", batch_size=4, **MODES[mode]).iterator()
    next(it)
    shard = d / _shard(d, "train", 1).file  # not read yet (unshuffled), or read round-robin
    tmp = shard.with_name("rewrite.tmp")
    shutil.copyfile(shard, tmp)
    os.replace(tmp, shard)  # as a re-run of serialize does: same bytes, a new file
    with pytest.raises(DatasetError, match=rf"^{shard}: changed while reading") as info:
        for _ in it:
            pass
    assert "\n" not in str(info.value)


def test_older_metadata_without_edges_still_loads(uniform, tmp_path, caplog):
    d = _copy(uniform, tmp_path / "ds", "indexed")
    _edit_metadata(
        d, lambda m: [sh.pop("edges_crc32c") for sp in m["splits"] for sh in sp["shards"]]
    )
    with caplog.at_level("DEBUG", logger="dataops.loading.checks"):
        assert _read_all(d, "test") == _ids("test")
    assert "quick content check skipped" in caplog.text and "uni-test.tfrecord-00000" in caplog.text


def test_gzip_count_lowered_is_named(tmp_path):
    """Compressed shards have no index: their count is checked as they are read, every mode."""
    pre = write_preprocessed(tmp_path / "pre", FEATURES, {"train": _rows("train", 30)})
    d = tmp_path / "gz"
    run_serialize(SerializeParams(compression="gzip"), "uni", pre, d)
    _edit_metadata(
        d,
        lambda m: [
            x.update(num_examples=x["num_examples"] - 1)
            for x in (m["splits"][0], m["splits"][0]["shards"][0])
        ],
    )
    shard = d / _shard(d, "train").file
    for options in ({}, {"shuffle": True, "seed": 1}, {"cache": True}):
        _fails(rf"^{shard}: holds 30 examples, metadata.json says 29$", d, "train", **options)
