"""TFDS's metadata for a dataset directory: `dataset_info.json`, `features.json` and the class
names of each categorical feature (`<feature>.labels.txt`), so that
`tfds.builder_from_directory(DIR).as_dataset(split=...)` reads our shards, with label names.

The files follow what `tfds.folder_dataset.write_metadata` (tensorflow-datasets 4.9) writes:
`dataset_info.json` is the JSON form of TFDS's `DatasetInfo` proto (64-bit integers as strings)
and `features.json` that of `FeaturesDict.to_json()`. They are written from `metadata.json`
alone, deterministically (sorted keys, no timestamps, no absolute paths), without importing
TFDS. How each of our features maps (each stored kind's `tfds_json`, `dataops.features.stored`):

    categorical (int64 scalar + vocabulary)  ClassLabel (names in <feature>.labels.txt; see
                                             `tfds_names` for the names it cannot hold)
    tensor                                   Tensor(shape, dtype)
    sequence                                 Sequence(Tensor([], dtype))
    text                                     Text
    bytes                                    Tensor([], string)
    image, png                               Image(shape, uint8|uint16, png)
    image, raw                               Tensor(shape, uint8|uint16, encoding="bytes")

Only uncompressed datasets get these files: TFDS's TFRecord reader takes no GZIP/ZLIB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataops.features.stored import stored_feature
from dataops.metadata import DatasetMetadata, FeatureInfo
from dataops.naming import DATASET_INFO_FILE, FEATURES_FILE, SHARD_FORMAT, TEMPLATE, labels_file
from dataops.tfrecord.shard_index import FRAME_OVERHEAD

TFDS_VERSION = "1.0.0"
"""TFDS wants a `major.minor.patch` version; the dataset's own versions are git tags."""

OOV_NAME = "[OOV]"  # as FeatureInfo.class_name says it
"""Name of the out-of-vocabulary class (id = vocabulary size) of `unknown: oov` features."""

_TFDS = "tensorflow_datasets.core.features."


def class_names(meta: DatasetMetadata, f: FeatureInfo) -> list[str] | None:
    """The names of every id a categorical feature can hold (its vocabulary, then the OOV
    class when `unknown: oov`), or None when `f` is not categorical."""
    if f.vocabulary is None:
        return None
    names = list(f.vocabulary)
    if _unknown_policy(meta, f.name) == "oov":
        oov = OOV_NAME
        while oov in names:
            oov += "_"
        names.append(oov)
    return names


def tfds_names(meta: DatasetMetadata, f: FeatureInfo) -> list[str] | None:
    """The class names to give TFDS, or None when `f` is not categorical or TFDS's
    `<feature>.labels.txt` cannot hold its names: TFDS reads that file one name per line,
    stripped, skipping empty lines, so a name that is empty, has a line break, or starts or
    ends with whitespace would shift every id after it. Such a feature is then a plain int64
    Tensor for TFDS (ids without names)."""
    names = class_names(meta, f)
    if names is None or any(not n or n != n.strip() or "\n" in n or "\r" in n for n in names):
        return None
    return names


def _unknown_policy(meta: DatasetMetadata, name: str) -> str | None:
    feats = meta.preprocessing.get("params", {}).get("preprocess", {}).get("features", [])
    for f in feats:
        if isinstance(f, dict) and f.get("name") == name:
            return f.get("unknown")
    return None


def feature_json(meta: DatasetMetadata, f: FeatureInfo) -> dict[str, Any]:
    """One feature as TFDS's `FeatureConnector.to_json()` writes it: a ClassLabel for a
    categorical feature whose names TFDS can hold, otherwise what its kind says
    (`dataops.features.stored`)."""
    names = tfds_names(meta, f)
    if names is not None:
        out: dict[str, Any] = {
            "pythonClassName": _TFDS + "class_label_feature.ClassLabel",
            "classLabel": {"numClasses": str(len(names))},
        }
    else:
        out = stored_feature(f).tfds_json()
    if f.description:
        out["description"] = f.description
    return out


def features_json(meta: DatasetMetadata) -> dict[str, Any]:
    """`features.json`: a FeaturesDict of every feature."""
    return {
        "pythonClassName": _TFDS + "features_dict.FeaturesDict",
        "featuresDict": {"features": {f.name: feature_json(meta, f) for f in meta.features}},
    }


def dataset_info_json(meta: DatasetMetadata) -> dict[str, Any]:
    """`dataset_info.json`: name, version, the card, and per split its shard lengths and size."""
    info: dict[str, Any] = {
        "name": meta.name,
        "version": TFDS_VERSION,
        "fileFormat": SHARD_FORMAT,
        "moduleName": "",
        "description": meta.description,
        "citation": meta.citation,
        "splits": [
            {
                "name": s.name,
                # TFDS counts the examples' bytes, without the 16 bytes of TFRecord framing
                # around each (uncompressed shards only get these files).
                "numBytes": str(s.num_bytes - FRAME_OVERHEAD * s.num_examples),
                "shardLengths": [str(sh.num_examples) for sh in s.shards],
                "filepathTemplate": TEMPLATE,
            }
            for s in meta.splits
        ],
    }
    if meta.homepage:
        info["location"] = {"urls": [meta.homepage]}
    if meta.license:
        info["redistributionInfo"] = {"license": meta.license}
    return info


def write_tfds_info(directory: str | Path, meta: DatasetMetadata) -> list[Path]:
    """Write `dataset_info.json`, `features.json` and the labels files; return their paths."""
    from dataops.fsutil import write_json

    directory = Path(directory)
    written = [directory / DATASET_INFO_FILE, directory / FEATURES_FILE]
    write_json(written[0], dataset_info_json(meta))
    write_json(written[1], features_json(meta))
    for f in meta.features:
        names = tfds_names(meta, f)
        if names is not None:
            path = directory / labels_file(f.name)
            path.write_text("".join(n + "\n" for n in names), encoding="utf-8")
            written.append(path)
    return written
