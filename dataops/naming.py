"""Every file name of a dataset directory, built from one template and read by one parser, and
the project's default paths.

A dataset directory holds:

    <name>-<split>.tfrecord-00000-of-00004      shards (TFDS's `{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}`)
    index/<name>-<split>.tfindex-00000-of-00004  each uncompressed shard's index
    metadata.json                                the dataset's description (`dataops.metadata`)
    dataset_info.json, features.json,            what TFDS reads (`tfds.builder_from_directory`)
    <feature>.labels.txt

The indexes live in `index/` so that TFDS's tools, which take every file at the top level
matching the shard template for a shard (`tfds.folder_dataset.write_metadata`), never see them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# The conventional layout under a project root: what `dvc.yaml`, the CLI defaults, the
# pipeline, publish and the loader's DVC reads use.
SAMPLE_DIR = "data/sample"
SNAPSHOT_DIR = "data/snapshot"
PREPROCESSED_DIR = "data/preprocessed"
DATASET_DIR = "data/tfrecords"
REPORT_FILE = "reports/validation.json"

METADATA_FILE = "metadata.json"
DATASET_INFO_FILE = "dataset_info.json"
FEATURES_FILE = "features.json"
EXPORT_FILE = "export.json"  # beside an export's metadata.json (`dataops.export`)
INDEX_DIR = "index"

SHARD_FORMAT = "tfrecord"
INDEX_FORMAT = "tfindex"
TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
"""TFDS's default file name template (`tfds.core.naming.DEFAULT_FILENAME_TEMPLATE`); shards
and indexes both follow it, with FILEFORMAT `tfrecord` or `tfindex`."""

FileKind = Literal["shard", "index"]
_FORMAT = {"shard": SHARD_FORMAT, "index": INDEX_FORMAT}
_KIND = {v: k for k, v in _FORMAT.items()}
_NAME_RE = re.compile(
    r"(?P<dataset>.+)-(?P<split>[^-/]+)\.(?P<format>tfrecord|tfindex)-(?P<index>\d{5,})-of-(?P<count>\d{5,})"
)


def labels_file(feature: str) -> str:
    """TFDS's class-name file of a ClassLabel feature: one name per line."""
    return f"{feature}.labels.txt"


@dataclass(frozen=True, order=True)
class ShardName:
    """Shard `index` of `count` of one split, as a value: `str()` of its `file` and `index_file`
    is the name on disk; `parse` reads one back."""

    dataset: str
    split: str
    index: int
    count: int

    def _name(self, kind: FileKind) -> str:
        return (
            TEMPLATE.replace("{DATASET}", self.dataset)
            .replace("{SPLIT}", self.split)
            .replace("{FILEFORMAT}", _FORMAT[kind])
            .replace("{SHARD_X_OF_Y}", f"{self.index:05d}-of-{self.count:05d}")
        )

    @property
    def file(self) -> str:
        """The shard, relative to the dataset directory: `x-train.tfrecord-00000-of-00004`."""
        return self._name("shard")

    @property
    def index_file(self) -> str:
        """Its index, relative to the dataset directory: `index/x-train.tfindex-00000-of-00004`."""
        return f"{INDEX_DIR}/{self._name('index')}"


def shard_file(dataset: str, split: str, index: int, count: int) -> str:
    return ShardName(dataset, split, index, count).file


def parse(path: str) -> tuple[FileKind, ShardName] | None:
    """`(kind, name)` of a shard or index file name (a leading `index/` is allowed), or None
    when the name follows neither."""
    rel = path.replace("\\", "/")
    in_index_dir = rel.startswith(f"{INDEX_DIR}/")
    m = _NAME_RE.fullmatch(rel.removeprefix(f"{INDEX_DIR}/"))
    if m is None:
        return None
    kind: FileKind = _KIND[m["format"]]  # type: ignore[assignment]
    if (kind == "index") != in_index_dir:
        return None
    index, count = int(m["index"]), int(m["count"])
    if not 0 <= index < count:
        return None
    return kind, ShardName(m["dataset"], m["split"], index, count)
