"""Every fingerprint recipe of the project, in one place.

- `dataset_fingerprint`: the identity of a dataset's content. It covers everything that changes
  a byte of the shards or the meaning of a stored value (the inputs' content, the dataset name,
  every ingest/preprocess/serialize param, the *order* of the split ratios, the metadata
  format) and nothing that does not: batch sizes and the join's partition size
  (`NON_BYTE_PARAMS`; no stage has a thread count param, threads never change bytes), and the
  dataset card (descriptions, homepage, citation, license), which documents the data without
  changing it. Iterator states and `dvc status` rely on it.
- `files_digest`: one digest for the files of a source (see its docstring), so `metadata.json`
  stays a few KB however many files went in; the per-file list stays in the ingest manifest.
- `schema_hash`: the feature schema (names, kinds, dtypes, shapes, encodings) that decides a
  published version's major number.
- `cache_key`: where the loader caches one revision of a dataset: the `metadata.json` bytes,
  which pin every shard's sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dataops.fsutil import dumps_json

NON_BYTE_PARAMS: dict[str, frozenset[str]] = {
    # `ingest.partition_bytes` too: the joined partitions are merged back into the first
    # source's order, so the snapshot is the same bytes however many partitions the join used
    # (tests/stages/test_ingest.py). Preprocess fits numeric moments by fixed blocks of snapshot
    # rows (`dataops.features.numeric.BlockMoments`), so its batch size leaves the state's bits
    # alone.
    "ingest": frozenset({"batch_rows", "partition_bytes"}),
    "preprocess": frozenset({"batch_rows"}),
    "serialize": frozenset({"batch_rows"}),
}
"""Per params section, the keys that change how the work is cut, never a byte of the output.
`tests/test_fingerprint.py` changes each and checks that every file of the dataset
(`metadata.json` included) stays the same bytes; and that every other key moves the fingerprint."""

CARD_KEYS = frozenset({"description"})
"""Documentation keys of a feature: they reach metadata.json and dataset_info.json, not the data."""


def sha256_json(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys; see `dataops.fsutil.dumps_json`)."""
    return hashlib.sha256(dumps_json(obj).encode()).hexdigest()


def files_digest(files: Mapping[str, str]) -> str:
    """One sha256 for a set of files, from `{path: sha256 of its content}`.

    It is the sha256 of the text `sha256sum` prints for them, sorted by path: one line
    `<sha256>  <path>\\n` per file, paths relative to the project with `/`. So
    `(cd PROJECT && find data/sample/images -type f | LC_ALL=C sort | xargs sha256sum | sha256sum)`
    gives the same digest. A change to any file's content or name changes it.
    """
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.encode()):
        h.update(f"{files[path]}  {path}\n".encode())
    return h.hexdigest()


def ordered_ratios(
    ratios: Mapping[str, float], order: list[str] | None = None
) -> list[dict[str, Any]]:
    """Split ratios as an ordered list of `{name, ratio}`: the order decides which rows land in
    which split (`dataops.stages.split_assign.assign_splits` places them on the cumulative
    ratios), and a JSON object with sorted keys would lose it. `order` defaults to the mapping's
    own order."""
    names = order if order is not None else list(ratios)
    return [{"name": n, "ratio": ratios[n]} for n in names]


def content_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `{ingest, preprocess, serialize}` params without what changes no output byte
    (`NON_BYTE_PARAMS`) nor the data (feature descriptions). Split ratios must already be an
    ordered list (`ordered_ratios`)."""
    out: dict[str, Any] = {}
    for section, value in params.items():
        if not isinstance(value, Mapping):
            out[section] = value
            continue
        drop = NON_BYTE_PARAMS.get(section, frozenset())
        value = {k: v for k, v in value.items() if k not in drop}
        if section == "preprocess" and isinstance(value.get("features"), list):
            value["features"] = [
                {k: v for k, v in f.items() if k not in CARD_KEYS} if isinstance(f, Mapping) else f
                for f in value["features"]
            ]
        split = value.get("split") if section == "preprocess" else None
        if isinstance(split, Mapping) and isinstance(split.get("ratios"), Mapping):
            raise ValueError("split ratios must be an ordered list here (use ordered_ratios)")
        out[section] = value
    return out


def dataset_fingerprint(
    *,
    format_version: int,
    name: str,
    inputs: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any],
) -> str:
    """The dataset's fingerprint: sha256 of (format version, name, each source's format, path
    and `files_digest`, and `content_params(params)`)."""
    return sha256_json(
        {
            "format_version": format_version,
            "name": name,
            "inputs": {
                src: {k: v for k, v in info.items() if k in ("format", "path", "sha256")}
                for src, info in inputs.items()
            },
            "params": content_params(params),
        }
    )


SCHEMA_KEYS = ("name", "kind", "dtype", "shape", "encoding")


def schema_hash(features: list[Mapping[str, Any]]) -> str:
    """sha256 of the feature schema (name, kind, dtype, shape, encoding per feature, in order),
    first 16 hex digits. Same recipe as before this module existed, so published tags compare."""
    import json

    feats = [{k: f.get(k) for k in SCHEMA_KEYS} for f in features]
    return hashlib.sha256(json.dumps(feats, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(metadata_bytes: bytes) -> str:
    """The loader's cache key of one dataset revision: the first 16 hex digits of the sha256 of
    its `metadata.json` bytes (which pin every shard's and index's sha256)."""
    return hashlib.sha256(metadata_bytes).hexdigest()[:16]
