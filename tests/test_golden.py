"""Golden files: a tiny checked-in dataset whose bytes are pinned, so an encoding change is a
visible decision: `tests/golden/` (uncompressed shard, its index, metadata.json) and
`tests/golden/gzip/` (the same rows as a GZIP shard from the default deflate, ISA-L level 2).
To accept a deliberate change: `python tests/test_golden.py` rewrites them and prints the
sha256s to put below."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from dataops.config import DatasetParams, SerializeParams
from dataops.metadata import FeatureInfo
from dataops.stages.serialize import run_serialize
from tests.support.project import GOLDEN
from tests.support.records import write_preprocessed

SHARD = "golden-train.tfrecord-00000-of-00001"
INDEX = "index/golden-train.tfindex-00000-of-00001"
TFDS_FILES = ("dataset_info.json", "features.json", "label.labels.txt")
GOLDEN_SHA256 = "81e2ebe4d6d889245719fdbaa990e81cdbff616a219d260c5baa34f64df1d1f3"
GOLDEN_GZIP_SHA256 = "854e1ecfeee84e53eff83d3ccd7cbc1ce97ebe5a92a7960cca986ea8be50e243"

FEATURES = [
    FeatureInfo(
        name="label",
        kind="tensor",
        dtype="int64",
        shape=[],
        encoding="none",
        num_classes=3,
        vocabulary=["a", "b", "c"],
        description="The class of the row.",
    ),
    FeatureInfo(name="vec", kind="tensor", dtype="float32", shape=[2, 2], encoding="none"),
    FeatureInfo(name="ids", kind="sequence", dtype="int64", shape=[None], encoding="none"),
    FeatureInfo(name="text", kind="text", dtype="string", shape=[], encoding="utf-8"),
    FeatureInfo(name="raw", kind="bytes", dtype="string", shape=[], encoding="none"),
]
CARD = DatasetParams(
    name="golden",
    description="Three hand-made rows, one of each feature kind.",
    homepage="https://example.org/golden",
    citation="@misc{golden, title={Golden}}",
    license="CC0-1.0",
)
ROWS = [
    {
        "label": 0,
        "vec": [[1.0, -2.5], [3.25, 0.0]],
        "ids": [1, 300, -7],
        "text": "héllo",
        "raw": b"\x00\xff",
    },
    {"label": 2, "vec": [[float("inf"), 1e-30], [-0.0, 7.0]], "ids": [], "text": "", "raw": b""},
    {
        "label": 1,
        "vec": [[0.5, 0.5], [0.5, 0.5]],
        "ids": [2**63 - 1, -(2**63)],
        "text": "日本語 text",
        "raw": b"abc",
    },
]


def build(out: Path, **params: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_preprocessed(Path(tmp) / "pre", FEATURES, {"train": ROWS})
        run_serialize(SerializeParams(**params), CARD, Path(tmp) / "pre", out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_golden_bytes(tmp_path):
    build(tmp_path / "ds")
    assert _sha256(GOLDEN / SHARD) == GOLDEN_SHA256
    files = sorted(p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds").rglob("*"))
    assert files == sorted(["index", SHARD, INDEX, "metadata.json", *TFDS_FILES])
    for name in (SHARD, INDEX, "metadata.json", *TFDS_FILES):
        assert (tmp_path / "ds" / name).read_bytes() == (GOLDEN / name).read_bytes(), name


def test_golden_gzip_bytes(tmp_path):
    """The default deflate (ISA-L, pinned in uv.lock) gives the same GZIP bytes every time."""
    build(tmp_path / "gz", compression="gzip")
    assert _sha256(GOLDEN / "gzip" / SHARD) == GOLDEN_GZIP_SHA256
    assert sorted(p.name for p in (tmp_path / "gz").iterdir()) == [SHARD, "metadata.json"]
    for name in (SHARD, "metadata.json"):
        assert (tmp_path / "gz" / name).read_bytes() == (GOLDEN / "gzip" / name).read_bytes()


def test_golden_parses_with_tensorflow():
    import tensorflow as tf

    from dataops.metadata import read_metadata
    from dataops.tfrecord.spec import parse_spec

    meta = read_metadata(GOLDEN)
    raw = next(iter(tf.data.TFRecordDataset(str(GOLDEN / SHARD)).batch(10)))
    parsed = tf.io.parse_example(raw, parse_spec(meta))
    assert parsed["label"].numpy().tolist() == [0, 2, 1]
    assert parsed["ids"].to_list() == [[1, 300, -7], [], [2**63 - 1, -(2**63)]]
    assert [t.decode() for t in parsed["text"].numpy().tolist()] == ["héllo", "", "日本語 text"]
    assert parsed["vec"].shape == (3, 2, 2)


if __name__ == "__main__":
    shutil.rmtree(GOLDEN, ignore_errors=True)
    build(GOLDEN)
    build(GOLDEN / "gzip", compression="gzip")
    print("GOLDEN_SHA256 =", _sha256(GOLDEN / SHARD))
    print("GOLDEN_GZIP_SHA256 =", _sha256(GOLDEN / "gzip" / SHARD))
