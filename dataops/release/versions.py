"""Published dataset versions, as the Datasets page and `dataops versions` show them.

A version is an annotated tag written by `dataops.release.publish` (`dataops.release.tags`); what it
recorded is read, as untrusted input, by `dataops.release.history`. Here the versions are listed
(newest first, duplicates of an earlier fingerprint flagged) and one version is described: its
summary, schema, splits and shards, params and what changed in them since the previous version.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dataops.artifacts import PublishedReport, whole_number
from dataops.release.history import (
    REPORT,
    VERSION_RE,
    VersionTag,
    blob_at,
    clean_text,
    find_tag,
    metadata_at,
    parse_json,
    parse_yaml,
    project_tags,
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class VersionSummary:
    """One published version, as listed on the Datasets page."""

    tag: str
    dataset: str
    version: str
    commit: str
    date: str
    num_examples: dict[str, int]
    num_bytes: int
    ok: bool | None
    fingerprint: str | None
    subject: str
    duplicate_of: str | None = None  # an earlier version of the dataset with the same fingerprint

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _split_order(name: str) -> tuple[int, str]:
    known = ("train", "validation", "test")
    return (known.index(name) if name in known else len(known), name)


def _version_key(version: str) -> tuple[int, int]:
    m = VERSION_RE.match(version)
    return (int(m["major"]), int(m["build"])) if m else (0, 0)


def _summary(repo: Path, tag: VersionTag) -> VersionSummary:
    report = PublishedReport.salvage(parse_json(blob_at(repo, tag.commit, REPORT)))
    counts = report.num_examples
    num_examples = {clean_text(k, 100): counts[k] for k in sorted(counts, key=_split_order)}
    num_bytes = sum(report.num_bytes.values())
    ok = report.ok
    if ok and report.fingerprint != tag.fingerprint:
        ok = None  # the report is not about the data this tag publishes
    return VersionSummary(
        tag=tag.name,
        dataset=tag.dataset,
        version=tag.version,
        commit=tag.commit,
        date=tag.date,
        num_examples=num_examples,
        num_bytes=num_bytes,
        ok=ok,
        fingerprint=tag.fingerprint,
        subject=tag.subject,
    )


def _with_duplicates(summaries: list[VersionSummary]) -> list[VersionSummary]:
    """Flag each version whose fingerprint equals an earlier version's of the same dataset."""
    first: dict[tuple[str, str | None], str] = {}
    out = []
    for v in sorted(summaries, key=lambda v: (v.dataset, *_version_key(v.version))):
        key = (v.dataset, v.fingerprint)
        dup = first.setdefault(key, v.tag)
        out.append(VersionSummary(**{**v.to_json(), "duplicate_of": dup if dup != v.tag else None}))
    return out


def list_versions(repo: str | Path, dataset: str | None = None) -> list[VersionSummary]:
    """Every published version in `repo` (newest first), optionally of one dataset only."""
    repo = Path(repo)
    tags = [t for t in project_tags(repo) if dataset is None or t.dataset == dataset]
    out = _with_duplicates([_summary(repo, t) for t in tags])
    out.sort(key=lambda v: (v.date, v.dataset, *_version_key(v.version)), reverse=True)
    return out


def read_version_metadata(repo: str | Path, tag: str) -> dict[str, Any] | None:
    """`metadata.json` of the version at `tag`, from the DVC cache or a local remote; None when absent."""
    repo = Path(repo)
    return metadata_at(repo, find_tag(repo, tag).commit)


def _features(meta: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    feats = meta.get("features")
    for f in feats if isinstance(feats, list) else []:
        if not isinstance(f, dict):
            continue
        shape = f.get("shape")
        out.append(
            {
                "name": clean_text(f.get("name", ""), 200),
                "kind": clean_text(f.get("kind", ""), 50),
                "dtype": clean_text(f.get("dtype", ""), 50),
                "shape": [whole_number(d) for d in shape] if isinstance(shape, list) else None,
                "encoding": clean_text(f.get("encoding", ""), 50),
                "num_classes": whole_number(f.get("num_classes")),
            }
        )
    return out


def _splits(meta: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    splits = meta.get("splits")
    for s in splits if isinstance(splits, list) else []:
        if not isinstance(s, dict):
            continue
        shards = s.get("shards")
        out.append(
            {
                "name": clean_text(s.get("name", ""), 100),
                "num_examples": whole_number(s.get("num_examples")),
                "num_bytes": whole_number(s.get("num_bytes")),
                "shards": [
                    {
                        "file": clean_text(sh.get("file", ""), 300),
                        "num_examples": whole_number(sh.get("num_examples")),
                        "num_bytes": whole_number(sh.get("num_bytes")),
                        "sha256": sh["sha256"]
                        if isinstance(sh.get("sha256"), str) and _SHA256_RE.match(sh["sha256"])
                        else None,
                    }
                    for sh in (shards if isinstance(shards, list) else [])
                    if isinstance(sh, dict)
                ],
            }
        )
    return out


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def params_diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """Keys of params.yaml whose value differs between two versions: [{key, old, new}], sorted by key."""
    a, b = (
        _flatten(old if isinstance(old, dict) else {}),
        _flatten(new if isinstance(new, dict) else {}),
    )
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb or type(va) is not type(vb):
            out.append(
                {
                    "key": key,
                    "old": None if va is missing else va,
                    "new": None if vb is missing else vb,
                }
            )
    return out


def load_snippet(tag: str, splits: list[str]) -> str:
    """Python that loads this version from a clone of the project (string literals via json: safe quoting)."""
    split = splits[0] if splits else "train"
    return f'import dataops\n\nds = dataops.load({json.dumps(tag)}, {json.dumps(split)}, repo=".")  # in a clone of the project\n'


def version_detail(repo: str | Path, tag: str) -> dict[str, Any]:
    """Everything the Datasets page shows for one version: summary, schema, splits and shards, params,
    validation, the params changed since the previous version of the dataset, a `dataops.load` snippet."""
    repo = Path(repo)
    found = find_tag(repo, tag)
    versions = list_versions(repo, found.dataset)
    summary = next(v for v in versions if v.tag == found.name)
    ordered = sorted(versions, key=lambda v: _version_key(v.version))
    idx = [v.tag for v in ordered].index(found.name)
    previous = ordered[idx - 1] if idx > 0 else None
    params = parse_yaml(blob_at(repo, found.commit, "params.yaml"))
    params = params if isinstance(params, dict) else None
    prev_params = None
    if previous is not None:
        prev_params = parse_yaml(blob_at(repo, previous.commit, "params.yaml"))
    violations = PublishedReport.salvage(parse_json(blob_at(repo, found.commit, REPORT))).violations
    meta = metadata_at(repo, found.commit)
    detail: dict[str, Any] = {
        **summary.to_json(),
        "params": params,
        "previous": previous.tag if previous else None,
        "params_changes": params_diff(prev_params, params) if previous else None,
        "violations": [clean_text(v) for v in violations or []],
        "schema_hash": found.schema,
        "metadata_available": meta is not None,
        "features": None,
        "splits": None,
        "compression": None,
    }
    if meta is None:
        detail["metadata_note"] = (
            f"metadata.json of {found.name} is in neither the workspace's DVC cache nor a local DVC remote; "
            "run `dvc fetch` at that tag"
        )
    else:
        detail["features"] = _features(meta)
        detail["splits"] = _splits(meta)
        detail["compression"] = clean_text(meta.get("compression", ""), 50)
    detail["load_snippet"] = load_snippet(
        found.name, [s["name"] for s in detail["splits"] or []] or list(summary.num_examples)
    )
    return detail
