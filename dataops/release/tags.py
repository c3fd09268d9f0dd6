"""The tags of published versions: their names, their messages' trailers, and the next one.

Tag scheme: `<dataset>-v<major>.<build>`. The first version of a dataset is `v1.0`; each later
published version that keeps the feature schema (names, kinds, dtypes, shapes, encodings) bumps
`build` (`v1.1`, `v1.2`, ...); one that changes the schema bumps `major` and resets `build`
(`v2.0`). The annotated tag's message records the dataset, schema hash and examples per split,
and ends with three git trailers that identify the version without a checkout::

    Dataops-Dataset: <dataset name>
    Dataops-Version: <vN.M>
    Dataops-Fingerprint: <sha256 hex>
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dataops import naming
from dataops.artifacts import PublishedReport
from dataops.errors import ConfigError
from dataops.release.git import git, succeeds

REPORT = naming.REPORT_FILE
TAG_RE = re.compile(r"^(?P<dataset>.+)-v(?P<major>\d+)\.(?P<build>\d+)$")
TRAILER_DATASET = "Dataops-Dataset"
TRAILER_VERSION = "Dataops-Version"
TRAILER_FINGERPRINT = "Dataops-Fingerprint"


@dataclass(frozen=True)
class PublishedVersion:
    """One tag of a dataset as git holds it."""

    tag: str
    major: int
    build: int
    commit: str
    fingerprint: str | None
    schema: str | None
    created: int


def check_tag_name(cwd: Path | str, dataset: str) -> str:
    """The first tag of `dataset` (`<dataset>-v1.0`) as a full ref; a ConfigError when git refuses the name."""
    ref = f"refs/tags/{dataset}-v1.0"
    if not dataset or not succeeds(Path(cwd), "check-ref-format", ref):
        raise ConfigError(
            f"params.yaml: key 'dataset.name': {dataset!r} cannot name a git tag ({ref!r} fails `git check-ref-format`); "
            "use letters, digits, '-', '_' and '.' without '..', a leading '.' or a trailing '.lock'"
        )
    return ref


def parse_tag_message(text: str) -> dict[str, str]:
    """The `key: value` lines of a publish tag's message (the body lines and the `Dataops-*` trailers)."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and " " not in k.strip():
            out[k.strip()] = v.strip()
    return out


def parse_trailers(text: str) -> dict[str, str]:
    """The `Dataops-*` trailers of a tag message: the `Key: value` lines of its last paragraph."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if not paragraphs:
        return {}
    out = {}
    for line in paragraphs[-1].splitlines():
        k, sep, v = line.partition(": ")
        if sep and k.startswith("Dataops-"):
            out[k] = v.strip()
    return out


def published_versions(cwd: Path | str, dataset: str) -> list[PublishedVersion]:
    """Every tag `<dataset>-vN.M` in `cwd`, oldest version first, with its fingerprint: the
    `Dataops-Fingerprint` trailer, else (older tags) the `fingerprint:` line or the committed report."""
    cwd = Path(cwd)
    fmt = "%(refname)%00%(objectname)%00%(*objectname)%00%(creatordate:unix)%00%(contents)%1e"
    raw = git(cwd, "for-each-ref", f"--format={fmt}", "refs/tags/", strip=False)
    out = []
    for record in raw.split("\x1e"):
        fields = record.lstrip("\n").split("\0")
        if len(fields) < 5:
            continue
        ref, obj, peeled, created, contents = fields[:5]
        tag = ref.removeprefix("refs/tags/")
        m = TAG_RE.match(tag)
        if not m or m["dataset"] != dataset:
            continue
        keys = parse_tag_message(contents)
        fingerprint = parse_trailers(contents).get(TRAILER_FINGERPRINT) or keys.get("fingerprint")
        if not fingerprint:
            report = git(cwd, "show", f"{ref}:{REPORT}", check=False)
            try:
                fingerprint = PublishedReport.salvage(json.loads(report or "null")).fingerprint
            except json.JSONDecodeError:
                fingerprint = None
        out.append(
            PublishedVersion(
                tag=tag,
                major=int(m["major"]),
                build=int(m["build"]),
                commit=peeled or obj,
                fingerprint=fingerprint,
                schema=keys.get("schema"),
                created=int(created or 0),
            )
        )
    return sorted(out, key=lambda v: (v.major, v.build))


def dataset_tags(cwd: Path, dataset: str) -> list[tuple[int, int, str]]:
    """(major, build, tag) of every published tag of `dataset`, oldest version first."""
    return [(v.major, v.build, v.tag) for v in published_versions(cwd, dataset)]


def next_tag(cwd: Path, dataset: str, schema: str) -> str:
    """The tag of the next version: build+1 with the same schema as the latest, major+1 otherwise."""
    versions = published_versions(cwd, dataset)
    if not versions:
        return f"{dataset}-v1.0"
    latest = versions[-1]
    if latest.schema == schema:
        return f"{dataset}-v{latest.major}.{latest.build + 1}"
    return f"{dataset}-v{latest.major + 1}.0"
