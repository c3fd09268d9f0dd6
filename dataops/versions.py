"""Published dataset versions, read from git tags and the DVC cache without checking anything out.

A version is a tag `<dataset>-v<major>.<build>` made by `dataops.publish`. Its validation report
(`reports/validation.json`) and params are in git; its `metadata.json` is DVC-tracked, so it is
found through `dvc.lock` at the tag: the md5 of the `data/tfrecords` out names a `.dir` listing
in the DVC cache, which gives the md5 of `metadata.json`, whose bytes are in the cache (or in a
local-path DVC remote) under `files/md5/<2 hex>/<30 hex>`.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from dataops.errors import DatasetError
from dataops.publish import DATASET_DIR, REPORT, TAG_RE, parse_tag_message


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def _show(repo: Path, ref: str, path: str) -> str | None:
    proc = _git(repo, "show", f"{ref}:{path}")
    return proc.stdout if proc.returncode == 0 else None


def list_versions(repo: str | Path, dataset: str | None = None) -> list[VersionSummary]:
    """Every published version in `repo` (newest first), optionally of one dataset only."""
    repo = Path(repo)
    fmt = "%00".join(
        [
            "%(refname:short)",
            "%(objectname)",
            "%(*objectname)",
            "%(creatordate:iso-strict)",
            "%(contents:subject)",
        ]
    )
    proc = _git(repo, "for-each-ref", f"--format={fmt}", "refs/tags")
    if proc.returncode != 0:
        raise DatasetError(f"{repo}: not a git repository ({proc.stderr.strip()})")
    out = []
    for line in proc.stdout.splitlines():
        tag, obj, peeled, date, subject = (line.split("\0") + [""] * 5)[:5]
        m = TAG_RE.match(tag)
        if not m or (dataset is not None and m["dataset"] != dataset):
            continue
        commit = peeled or obj
        report = _read_json(_show(repo, tag, REPORT))
        counts = report.get("num_examples") or {}
        num_examples = {str(k): int(counts[k]) for k in sorted(counts, key=_split_order)}
        num_bytes = sum(int(v) for v in (report.get("num_bytes") or {}).values())
        ok = report.get("ok") if "ok" in report else None
        out.append(
            VersionSummary(
                tag=tag,
                dataset=m["dataset"],
                version=f"v{m['major']}.{m['build']}",
                commit=commit,
                date=date,
                num_examples=num_examples,
                num_bytes=num_bytes,
                ok=ok,
                fingerprint=report.get("fingerprint"),
                subject=subject,
            )
        )
    out.sort(key=lambda v: (v.date, v.dataset, *_version_key(v.tag)), reverse=True)
    return out


def _split_order(name: str) -> tuple[int, str]:
    known = ("train", "validation", "test")
    return (known.index(name) if name in known else len(known), name)


def _version_key(tag: str) -> tuple[int, int]:
    m = TAG_RE.match(tag)
    return (int(m["major"]), int(m["build"])) if m else (0, 0)


def _read_json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _object_dirs(repo: Path) -> list[Path]:
    """Where DVC objects may be: the cache (`cache.dir` or `.dvc/cache`) and any local-path remote."""
    dvc_dir = repo / ".dvc"
    dirs: list[Path] = []
    cp = configparser.ConfigParser()
    for name in ("config", "config.local"):
        try:
            cp.read(dvc_dir / name, encoding="utf-8")
        except configparser.Error:
            continue
    cache_dir = None
    remotes: list[str] = []
    for section in cp.sections():
        sec = section.strip("'\"")
        if sec == "cache" and cp.has_option(section, "dir"):
            cache_dir = cp.get(section, "dir")
        if sec.startswith("remote") and cp.has_option(section, "url"):
            remotes.append(cp.get(section, "url"))
    dirs.append((dvc_dir / cache_dir).resolve() if cache_dir else dvc_dir / "cache")
    for url in remotes:
        if "://" not in url:
            dirs.append((dvc_dir / url).resolve())
    return dirs


def _object(repo: Path, md5: str) -> bytes | None:
    for base in _object_dirs(repo):
        path = base / "files" / "md5" / md5[:2] / md5[2:]
        if path.is_file():
            return path.read_bytes()
    return None


def _out_md5(lock: dict[str, Any], out_path: str) -> str | None:
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == out_path:
                return out.get("md5")
    return None


def read_version_metadata(repo: str | Path, tag: str) -> dict[str, Any] | None:
    """`metadata.json` of the version at `tag`, from the DVC cache or a local remote; None when absent."""
    repo = Path(repo)
    lock_text = _show(repo, tag, "dvc.lock")
    if lock_text is None:
        return None
    md5 = _out_md5(yaml.safe_load(lock_text) or {}, DATASET_DIR)
    if not md5:
        return None
    listing = _object(repo, md5)
    if listing is None:
        return None
    for entry in json.loads(listing):
        if entry.get("relpath") == "metadata.json":
            raw = _object(repo, entry["md5"])
            return json.loads(raw) if raw is not None else None
    return None


def version_detail(repo: str | Path, tag: str) -> dict[str, Any]:
    """Everything the Datasets page shows for one version: summary, schema, splits and shards, params, validation."""
    repo = Path(repo)
    found = [v for v in list_versions(repo) if v.tag == tag]
    if not found:
        raise DatasetError(f"{repo}: no published version {tag!r}")
    summary = found[0]
    params_text = _show(repo, tag, "params.yaml")
    report = _read_json(_show(repo, tag, REPORT))
    meta = read_version_metadata(repo, tag)
    tag_msg = parse_tag_message(_git(repo, "tag", "--list", "--format=%(contents)", tag).stdout)
    detail: dict[str, Any] = {
        **summary.to_json(),
        "params": yaml.safe_load(params_text) if params_text else None,
        "violations": report.get("violations", []),
        "schema_hash": tag_msg.get("schema"),
        "metadata_available": meta is not None,
        "features": None,
        "splits": None,
        "compression": None,
    }
    if meta is None:
        detail["metadata_note"] = (
            f"metadata.json of {tag} is in neither the DVC cache nor a local remote of {repo}; run `dvc fetch` at that tag"
        )
    else:
        detail["features"] = [
            {k: f.get(k) for k in ("name", "kind", "dtype", "shape", "encoding", "num_classes")}
            for f in meta.get("features", [])
        ]
        detail["splits"] = meta.get("splits")
        detail["compression"] = meta.get("compression")
    return detail
