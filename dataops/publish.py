"""Publish a validated dataset version: `dvc push`, a git commit of its params and lock, and a tag.

Tag scheme: `<dataset>-v<major>.<build>`. The first version of a dataset is `v1.0`; each later
published version that keeps the feature schema (names, kinds, dtypes, shapes, encodings) bumps
`build` (`v1.1`, `v1.2`, ...); one that changes the schema bumps `major` and resets `build`
(`v2.0`). The annotated tag's message records the dataset, fingerprint, schema hash and
examples per split, so listing versions needs no checkout.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataops import naming
from dataops.airflow_tasks import run_dvc, tool_env
from dataops.errors import DatasetError
from dataops.fingerprint import schema_hash as _schema_hash

PUBLISHED_FILES = ("params.yaml", "dvc.lock", naming.REPORT_FILE)
DATASET_DIR = naming.DATASET_DIR
REPORT = naming.REPORT_FILE
TAG_RE = re.compile(r"^(?P<dataset>.+)-v(?P<major>\d+)\.(?P<build>\d+)$")
GIT_IDENTITY = {"user.name": "dataops publish", "user.email": "dataops@localhost"}


@dataclass(frozen=True)
class PublishResult:
    """What publish did: a new commit and tag, or nothing (with the reason)."""

    published: bool
    dataset: str
    fingerprint: str
    num_examples: dict[str, int]
    message: str
    commit: str | None = None
    tag: str | None = None
    changed_files: list[str] = field(default_factory=list)

    def asset_extra(self) -> dict[str, Any]:
        """The `extra` of the Airflow Asset event for this version."""
        return {
            "dataset": self.dataset,
            "commit": self.commit,
            "tag": self.tag,
            "fingerprint": self.fingerprint,
            "num_examples": dict(self.num_examples),
        }


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run `git ARGS` in `cwd` (argument list, no shell); return stdout stripped."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise DatasetError(
            f"`git {' '.join(args)}` failed in {cwd} (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def _identity_args(cwd: Path) -> list[str]:
    out = []
    for key, default in GIT_IDENTITY.items():
        if not git(cwd, "config", "--get", key, check=False):
            out += ["-c", f"{key}={default}"]
    return out


def schema_hash(metadata: dict[str, Any]) -> str:
    """The feature schema's hash (`dataops.fingerprint.schema_hash`) of a metadata.json."""
    return _schema_hash(metadata.get("features", []))


def parse_tag_message(text: str) -> dict[str, str]:
    """The `key: value` lines of a publish tag's message."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and " " not in k.strip():
            out[k.strip()] = v.strip()
    return out


def dataset_tags(cwd: Path, dataset: str) -> list[tuple[int, int, str]]:
    """(major, build, tag) of every published tag of `dataset`, oldest version first."""
    tags = []
    for t in git(cwd, "tag", "--list", f"{dataset}-v*").splitlines():
        m = TAG_RE.match(t.strip())
        if m and m["dataset"] == dataset:
            tags.append((int(m["major"]), int(m["build"]), t.strip()))
    return sorted(tags)


def next_tag(cwd: Path, dataset: str, schema: str) -> str:
    """The tag of the next version: build+1 with the same schema as the latest, major+1 otherwise."""
    tags = dataset_tags(cwd, dataset)
    if not tags:
        return f"{dataset}-v1.0"
    major, build, latest = tags[-1]
    prev = parse_tag_message(git(cwd, "tag", "--list", "--format=%(contents)", latest)).get(
        "schema"
    )
    if prev == schema:
        return f"{dataset}-v{major}.{build + 1}"
    return f"{dataset}-v{major + 1}.0"


def _examples(num_examples: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in num_examples.items())


def publish(cwd: Path, log: Callable[[str], None] = print, push: bool = True) -> PublishResult:
    """Push the data to the DVC remote, then commit `params.yaml`, `dvc.lock` and the validation report and tag
    the commit — only when they changed. Refuses a dataset whose validation report is not ok."""
    cwd = Path(cwd)
    report_path = cwd / REPORT
    meta_path = cwd / DATASET_DIR / naming.METADATA_FILE
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(
            f"{err.filename}: not found — run the pipeline before publishing"
        ) from None
    if not report.get("ok"):
        raise DatasetError(
            f"{report_path}: validation failed, not publishing: "
            + "; ".join(report.get("violations", []))
        )
    dataset = str(meta["name"])
    fingerprint = str(meta["fingerprint"])
    if report.get("fingerprint") != fingerprint:
        raise DatasetError(
            f"{report_path} is for fingerprint {report.get('fingerprint')}, {meta_path} has {fingerprint}: validate is stale"
        )
    num_examples = {s["name"]: int(s["num_examples"]) for s in meta["splits"]}
    num_bytes = sum(int(s["num_bytes"]) for s in meta["splits"])

    if push:
        run_dvc(["push"], cwd, log)
    changed = [
        ln[3:]
        for ln in git(cwd, "status", "--porcelain", "--", *PUBLISHED_FILES).splitlines()
        if ln.strip()
    ]
    if not changed:
        head = git(cwd, "rev-parse", "HEAD")
        tags = git(cwd, "tag", "--points-at", "HEAD").split()
        at = f" (tag {', '.join(tags)})" if tags else ""
        msg = f"nothing changed: {', '.join(PUBLISHED_FILES)} are as committed in {head[:12]}{at}; no commit, no tag"
        log(msg)
        return PublishResult(
            False,
            dataset,
            fingerprint,
            num_examples,
            msg,
            commit=head,
            tag=tags[0] if tags else None,
        )

    schema = schema_hash(meta)
    tag = next_tag(cwd, dataset, schema)
    version = tag[len(dataset) + 1 :]
    subject = f"Publish {dataset} {version}: {_examples(num_examples)} examples, fingerprint {fingerprint[:12]}"
    body = "\n".join(
        [
            f"dataset: {dataset}",
            f"version: {version}",
            f"fingerprint: {fingerprint}",
            f"schema: {schema}",
            f"examples: {_examples(num_examples)}",
            f"bytes: {num_bytes}",
            f"files: {', '.join(changed)}",
        ]
    )
    ident = _identity_args(cwd)
    git(cwd, "add", "--", *PUBLISHED_FILES)
    git(cwd, *ident, "commit", "--quiet", "-m", subject, "-m", body, "--", *PUBLISHED_FILES)
    commit = git(cwd, "rev-parse", "HEAD")
    git(cwd, *ident, "tag", "-a", tag, "-m", subject, "-m", body, commit)
    msg = f"published {tag} at commit {commit[:12]}: {_examples(num_examples)} examples, fingerprint {fingerprint[:12]}"
    log(msg)
    return PublishResult(
        True, dataset, fingerprint, num_examples, msg, commit=commit, tag=tag, changed_files=changed
    )
