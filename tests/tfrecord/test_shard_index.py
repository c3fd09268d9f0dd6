"""Shard indexes: written beside uncompressed shards, agreeing with their framing, read by the
loader block by block with the same values as a plain TFRecordDataset pass, and any damage
named by `verify` and the loader."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf

import dataops
import dataops.tfrecord.shard_index as shard_index
from dataops import naming
from dataops.config import SerializeParams
from dataops.errors import DatasetError
from dataops.loader import Loader
from dataops.metadata import read_metadata
from dataops.resume import LoaderState
from dataops.stages.serialize import run_serialize
from dataops.tfrecord.codec import iter_records
from dataops.tfrecord.spec import decode_batch, parse_spec
from tests.support.project import run_cli

BLOCK = 4_000  # bytes: the 240-row sample then has dozens of blocks per split


@pytest.fixture(scope="module")
def blocky(small_dataset, tmp_path_factory):
    """The small sample serialized into 2 shards per split with 4 kB index blocks."""
    mp = pytest.MonkeyPatch()
    mp.setattr(shard_index, "BLOCK_BYTES", BLOCK)
    out = tmp_path_factory.mktemp("blocky") / "ds"
    run_serialize(
        SerializeParams(num_shards=2, batch_rows=7),
        "sample",
        small_dataset / "data" / "preprocessed",
        out,
    )
    mp.undo()
    return out


def _index(d, split="train", i=0):
    meta = read_metadata(d)
    sh = meta.split(split).shards[i]
    return shard_index.read_index(d / sh.file, d / sh.index.file, sh.num_examples, sh.num_bytes)


def test_index_agrees_with_the_framing(blocky):
    meta = read_metadata(blocky)
    for split in meta.splits:
        for i, sh in enumerate(split.shards):
            assert sh.index is not None
            assert naming.parse(sh.file) == ("shard", naming.parse(sh.index.file)[1])
            assert sh.index.file == naming.parse(sh.file)[1].index_file
            ix = _index(blocky, split.name, i)
            assert ix.num_blocks > 3
            records = []
            for b in range(ix.num_blocks):
                blob, rel = shard_index.read_block(ix, b)
                size = int(rel[-1])
                assert (
                    size >= BLOCK or b == ix.num_blocks - 1
                )  # a block closes once it reaches BLOCK
                assert int(rel[-2]) < BLOCK  # ... at the first record boundary past it
                records += [blob[a + 12 : z - 4] for a, z in zip(rel[:-1], rel[1:], strict=True)]
            assert records == [bytes(r) for r in iter_records(str(blocky / sh.file))]


def test_index_is_reproducible_and_batch_size_free(small_dataset, blocky, tmp_path, monkeypatch):
    monkeypatch.setattr(shard_index, "BLOCK_BYTES", BLOCK)
    src = small_dataset / "data" / "preprocessed"
    run_serialize(SerializeParams(num_shards=2, batch_rows=500), "sample", src, tmp_path / "b")
    names = sorted(p.relative_to(blocky).as_posix() for p in blocky.rglob("*") if p.is_file())
    assert names == sorted(
        p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    kinds = [k for k, _ in filter(None, map(naming.parse, names))]
    assert kinds.count("index") == kinds.count("shard") == 6
    for n in names:  # metadata.json too: batch_rows changes no byte, so it is not recorded
        assert (tmp_path / "b" / n).read_bytes() == (blocky / n).read_bytes(), n
    assert read_metadata(tmp_path / "b").splits == read_metadata(blocky).splits


def test_compressed_shards_have_no_index(small_dataset, tmp_path):
    src = small_dataset / "data" / "preprocessed"
    run_serialize(SerializeParams(compression="gzip"), "sample", src, tmp_path / "gz")
    meta = read_metadata(tmp_path / "gz")
    assert all(sh.index is None for s in meta.splits for sh in s.shards)
    assert not (tmp_path / "gz" / naming.INDEX_DIR).exists()
    assert len(list(dataops.load(tmp_path / "gz", batch_size=50))) == -(
        -meta.num_examples["train"] // 50
    )


def _reference(d, split_name, lo, hi):
    """Rows [lo, hi) of a split read the plain way: TFRecordDataset over the shards, one parse."""
    meta = read_metadata(d)
    files = [str(d / sh.file) for sh in meta.split(split_name).shards]
    raw = next(iter(tf.data.TFRecordDataset(files).skip(lo).take(hi - lo).batch(1 << 20)))
    return decode_batch(meta, tf.io.parse_example(raw, parse_spec(meta)))


def _values(t):
    return t.to_list() if isinstance(t, tf.RaggedTensor) else t.numpy().tolist()


@pytest.mark.parametrize(
    ("split", "parts", "batch_size", "drop"),
    [
        ("train", [("train", 0, None)], 7, False),
        ("train[5:171]", [("train", 5, 171)], 64, False),
        ("validation+train[:40]", [("validation", 0, None), ("train", 0, 40)], 9, True),
        ("test", [("test", 0, None)], 1, False),
    ],
)
def test_loader_reads_blocks_like_a_plain_pass(blocky, split, parts, batch_size, drop):
    meta = read_metadata(blocky)
    want: dict[str, list] = {}
    for name, lo, hi in parts:
        for k, v in _reference(blocky, name, lo, hi or meta.num_examples[name]).items():
            want.setdefault(k, []).extend(_values(v))
    loader = Loader(blocky, split, batch_size=batch_size, drop_remainder=drop)
    assert loader._shard_indexes() is not None  # the indexed path is the one under test
    got: dict[str, list] = {}
    sizes = []
    for batch in loader.dataset():
        sizes.append(int(batch["id"].shape[0]))
        for k, v in batch.items():
            got.setdefault(k, []).extend(_values(v))
    n = len(want["id"])
    keep = n - n % batch_size if drop else n
    assert sizes == [batch_size] * (keep // batch_size) + (
        [keep % batch_size] if keep % batch_size else []
    )
    for k in want:
        assert got[k] == want[k][:keep], k


def test_resuming_inside_a_block(blocky):
    loader = Loader(blocky, "train", batch_size=5, repeat=2)
    everything = [b["id"].numpy().tolist() for b in loader.dataset()]
    for skip in (1, 9, 23, len(everything) // 2 + 3):
        state = loader.state_after(skip)
        assert [b["id"].numpy().tolist() for b in loader.dataset(state)] == everything[skip:]


def test_damaged_index_is_named(blocky, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(blocky, d)
    ix = _index(d)
    path = d / read_metadata(d).split("train").shards[0].index.file
    data = bytearray(path.read_bytes())
    data[shard_index.HEADER.size + 8 * 1] ^= 0x04  # record 1's offset (block 0)
    path.write_bytes(bytes(data))
    r = run_cli("verify", str(d))
    assert r.returncode == 1
    assert f"{path}: sha256 " in r.stderr
    with pytest.raises(
        DatasetError, match=rf"{path.name}: sha256 [0-9a-f]{{64}}, metadata.json says"
    ):
        dataops.load(d, verify="sha256")
    # by default the index's sha256 is checked when the loader is built: the index is blamed
    with pytest.raises(
        DatasetError,
        match=rf"^{path}: sha256 [0-9a-f]{{64}}, metadata.json says [0-9a-f]{{64}} — the shard index is corrupted$",
    ):
        dataops.load(d)
    # read without its sha256, a block of the intact shard fails against the damaged offsets
    with pytest.raises(
        DatasetError,
        match=r"records 0-\d+ \(index block 0(, bytes \d+-\d+)?\): (the shard index is corrupt|record framing does not match the shard index)",
    ):
        shard_index.read_block(ix, 0)
    # ... and with it (as the loader reads), the failure is put on the index, not the shard
    sh = read_metadata(d).split("train").shards[0]
    named = shard_index.read_index(
        d / sh.file, path, sh.num_examples, sh.num_bytes, sha256=sh.index.sha256
    )
    blame = rf"^{path}: sha256 [0-9a-f]{{64}}, metadata.json says {sh.index.sha256} — the shard index is corrupt \(found reading records 0-\d+ .*of {d / sh.file}\)$"
    with pytest.raises(DatasetError, match=blame):
        shard_index.read_block(named, 0)
    with pytest.raises(DatasetError, match=blame):  # sizes agree: caught when the block is read
        for _ in Loader(d, batch_size=16, verify="size").iterator():
            pass
    with pytest.raises(tf.errors.UnknownError, match=str(path)):  # the bare tf.data stream too
        for _ in dataops.load(d, batch_size=16, verify="size"):
            pass


def test_missing_stray_and_truncated_index(blocky, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(blocky, d)
    sh = read_metadata(d).split("train").shards[0]
    index = d / sh.index.file
    stray = d / naming.ShardName("sample", "train", 7, 9).index_file
    shutil.move(index, stray)
    r = run_cli("verify", str(d))
    assert r.returncode == 1
    assert f"{index}: missing (the index of {sh.file})" in r.stderr
    assert f"{stray}: shard index not listed in metadata.json" in r.stderr
    with pytest.raises(
        DatasetError, match=rf"{index}: missing \(metadata.json lists it as the index of {sh.file}"
    ):
        dataops.load(d)
    index.write_bytes(stray.read_bytes()[:-3])
    with pytest.raises(
        DatasetError,
        match=rf"{index}: \d+ bytes, metadata.json says \d+ — the shard index is truncated",
    ):
        dataops.load(d)
    with pytest.raises(DatasetError, match=rf"{index}: truncated or padded shard index"):
        shard_index.read_index(d / sh.file, index, sh.num_examples, sh.num_bytes)


def test_block_table_covers_exactly_the_rows(blocky):
    ix = _index(blocky)
    bf = ix.block_first
    for start, count in [(0, ix.num_records), (0, 1), (int(bf[1]), 1), (int(bf[1]) - 1, 2), (3, 0)]:
        rows = ix.blocks_for(start, count)
        covered = [int(bf[b]) + s + i for b, s, t in rows for i in range(t)]
        assert covered == list(range(start, start + count))
    assert np.all(np.diff(bf) > 0)


def test_state_positions_stay_exact_across_reads(blocky):
    loader = Loader(blocky, "train", batch_size=8)
    st = LoaderState.model_validate({**loader.initial_state().model_dump(), "position": 13})
    first = next(iter(loader.dataset(st)))["id"].numpy().tolist()
    assert first == _values(_reference(blocky, "train", 13, 21)["id"])
