"""Publish a validated dataset version as one transaction: DVC push, git commit, tag, git push.

The tag scheme is `dataops.release.tags`'s.

The steps, in order: validate -> `dvc push` -> commit (`params.yaml`, `dvc.lock`, the validation
report; no commit when they are as committed) -> tag -> `git push --atomic` of the commit and the
tag to the configured git remote. "Is there something to publish?" is answered against the
fingerprints of the published tags, not against HEAD, so one fingerprint is never published
twice. A failure after the commit rolls the commit and the tag back (the workspace files are
kept, so a retry publishes them again); a retry after a crash completes what was left: an
untagged publish commit is tagged, an unpushed tag is pushed. A push refused because the
branch moved (someone pushed meanwhile) is rebased: the publish commit only replaces the
published files, so it is rebuilt on the remote tip — unless the remote changed a file the
version was built from, which fails with a clear message and a workspace moved to the remote tip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataops import naming
from dataops.artifacts import ValidationReport
from dataops.errors import ConfigError, DatasetError
from dataops.fingerprint import schema_hash as fingerprint_schema_hash
from dataops.metadata import read_metadata
from dataops.release.dvc import StageFailed, run_dvc
from dataops.release.git import (
    ENV_GIT_REMOTE,
    GitError,
    dvc_remote_url,
    git,
    git_target,
    head_commit,
    identity_args,
    is_ancestor,
    rev,
    succeeds,
)
from dataops.release.remote import (
    PublishConflict,
    PublishInterrupted,
    RemoteError,
    push_atomic,
    rebase,
    remote_has,
    remote_tip,
)
from dataops.release.tags import (
    TRAILER_DATASET,
    TRAILER_FINGERPRINT,
    TRAILER_VERSION,
    PublishedVersion,
    check_tag_name,
    next_tag,
    published_versions,
)
from dataops.release.workspace import PUBLISHED_FILES, changed_files

DATASET_DIR = naming.DATASET_DIR
REPORT = naming.REPORT_FILE
PUSH_ATTEMPTS = 3


@dataclass(frozen=True)
class PublishResult:
    """What publish did: a new (or completed) version, or nothing (with the reason)."""

    published: bool
    dataset: str
    fingerprint: str
    num_examples: dict[str, int]
    message: str
    commit: str | None = None
    tag: str | None = None
    changed_files: list[str] = field(default_factory=list)
    workspace: str | None = None
    git_remote: str | None = None
    git_branch: str | None = None
    dvc_remote: str | None = None
    tag_time: int | None = field(
        default=None, metadata={"doc": "When the tag was made (Unix seconds)."}
    )

    @property
    def version(self) -> str | None:
        return self.tag[len(self.dataset) + 1 :] if self.tag else None

    def load_call(self, split: str = "train") -> str:
        """A ready `dataops.load(...)` call for this version."""
        repo = self.git_remote or self.workspace
        return f"dataops.load({self.tag!r}, {split!r}, repo={repo!r})"

    def asset_extra(self) -> dict[str, Any]:
        """The `extra` of the Airflow Asset event: everything a consumer needs to load this version."""
        splits = list(self.num_examples)
        return {
            "dataset": self.dataset,
            "version": self.version,
            "tag": self.tag,
            "commit": self.commit,
            "fingerprint": self.fingerprint,
            "num_examples": dict(self.num_examples),
            "git_remote": self.git_remote,
            "git_branch": self.git_branch,
            "workspace": self.workspace,
            "dvc_remote": self.dvc_remote,
            "load": self.load_call(splits[0] if splits else "train"),
        }


def schema_hash(metadata: dict[str, Any]) -> str:
    """The feature schema's hash (`dataops.fingerprint.schema_hash`) of a metadata.json."""
    return fingerprint_schema_hash(metadata.get("features", []))


@dataclass(frozen=True)
class _Version:
    dataset: str
    fingerprint: str
    num_examples: dict[str, int]
    num_bytes: int
    schema: str


def _read_validated(cwd: Path) -> _Version:
    report_path = cwd / REPORT
    meta_path = cwd / DATASET_DIR / naming.METADATA_FILE
    for path in (report_path, meta_path):
        if not path.exists():
            raise DatasetError(f"{path}: not found — run the pipeline before publishing")
    report = ValidationReport.read(report_path)
    meta = read_metadata(meta_path.parent)
    if not report.ok:
        raise DatasetError(
            f"{report_path}: validation failed, not publishing: " + "; ".join(report.violations)
        )
    if report.fingerprint != meta.fingerprint:
        raise DatasetError(
            f"{report_path} is for fingerprint {report.fingerprint}, {meta_path} has {meta.fingerprint}: validate is stale"
        )
    return _Version(
        dataset=meta.name,
        fingerprint=meta.fingerprint,
        num_examples=meta.num_examples,
        num_bytes=sum(s.num_bytes for s in meta.splits),
        schema=schema_hash(meta.model_dump(mode="json")),
    )


def _examples(num_examples: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in num_examples.items())


def _messages(v: _Version, tag: str, files: list[str], commit: str | None) -> tuple[str, str]:
    version = tag[len(v.dataset) + 1 :]
    subject = f"Publish {v.dataset} {version}: {_examples(v.num_examples)} examples, fingerprint {v.fingerprint[:12]}"
    body = "\n".join(
        [
            f"dataset: {v.dataset}",
            f"version: {version}",
            f"fingerprint: {v.fingerprint}",
            f"schema: {v.schema}",
            f"examples: {_examples(v.num_examples)}",
            f"bytes: {v.num_bytes}",
            f"files: {', '.join(files)}"
            if files
            else f"files: none changed (tags the existing commit {commit})",
        ]
    )
    trailers = "\n".join(
        [
            f"{TRAILER_DATASET}: {v.dataset}",
            f"{TRAILER_VERSION}: {version}",
            f"{TRAILER_FINGERPRINT}: {v.fingerprint}",
        ]
    )
    return subject, f"{body}\n\n{trailers}"


def _publish_commit_parent(cwd: Path, commit: str) -> str | None:
    """The parent of `commit` when it is a publish commit (subject `Publish ...`, only published files changed)."""
    subject = git(cwd, "log", "-1", "--format=%s", "--end-of-options", commit)
    parent = git(cwd, "rev-parse", "--verify", "--quiet", f"{commit}^1", check=False)
    if not subject.startswith("Publish ") or not parent:
        return None
    files = git(cwd, "diff", "--name-only", "-z", parent, commit, strip=False).split("\0")
    return parent if set(f for f in files if f) <= set(PUBLISHED_FILES) else None


def _unwind(cwd: Path, tag: str | None, commit: str | None, parent: str | None, log) -> None:
    """Roll back: delete the local `tag`; when `commit` is HEAD, move HEAD back to `parent` keeping the
    workspace files (so a retry publishes them again)."""
    if tag and succeeds(cwd, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"):
        git(cwd, "update-ref", "-d", f"refs/tags/{tag}")
        log(f"rolled back: deleted local tag {tag}")
    if commit and parent and head_commit(cwd) == commit:
        git(cwd, "reset", "--quiet", "--soft", parent)
        git(cwd, "reset", "--quiet", parent, "--", *[f for f in PUBLISHED_FILES])
        log(
            f"rolled back: commit {commit[:12]} undone (HEAD back at {parent[:12]}); params.yaml, dvc.lock and the report kept in the workspace"
        )


def publish(
    cwd: Path | str,
    log: Callable[[str], None] = print,
    push: bool = True,
    remote: str | None = None,
    branch: str | None = None,
) -> PublishResult:
    """Publish the workspace's validated dataset (see the module docstring for the steps and the
    guarantees). `push=False` skips `dvc push`; `remote`/`branch` override `$DATAOPS_GIT_REMOTE`/
    `$DATAOPS_GIT_BRANCH` (no remote: the version stays in this repository, and the result says so)."""
    cwd = Path(cwd)
    v = _read_validated(cwd)
    check_tag_name(cwd, v.dataset)
    target = git_target(cwd, remote, branch)
    where = f"git remote {target.url} (branch {target.branch})" if target else "local only"
    if target is None:
        log(f"no git remote configured (${ENV_GIT_REMOTE}): the version stays in {cwd}, local only")
    dvc_url = dvc_remote_url(cwd)

    def result(
        published: bool, message: str, pv: PublishedVersion | None, files=()
    ) -> PublishResult:
        log(message)
        return PublishResult(
            published,
            v.dataset,
            v.fingerprint,
            v.num_examples,
            message,
            commit=pv.commit if pv else head_commit(cwd),
            tag=pv.tag if pv else None,
            changed_files=list(files),
            workspace=str(cwd),
            git_remote=target.url if target else None,
            git_branch=target.branch if target else None,
            dvc_remote=dvc_url,
            tag_time=pv.created if pv else None,
        )

    if push:
        try:
            run_dvc(["push"], cwd, log)
        except StageFailed as err:
            raise RemoteError(
                f"DVC remote {dvc_url}: push failed, nothing published: {err}"
            ) from None

    for _attempt in range(PUSH_ATTEMPTS):
        tip = remote_tip(cwd, target) if target else None
        versions = published_versions(cwd, v.dataset)
        same = [pv for pv in versions if pv.fingerprint == v.fingerprint]
        if same:
            pv = same[-1]
            if target is None or remote_has(cwd, target, pv.tag):
                return result(
                    False,
                    f"nothing to publish: fingerprint {v.fingerprint[:12]} is already published as {pv.tag} "
                    f"(commit {pv.commit[:12]}, {where}); no commit, no tag",
                    pv,
                )
            # an earlier attempt tagged it but did not push: complete that publish
            tag, commit, files = pv.tag, pv.commit, []
            parent = _own_publish_commit(cwd, commit, tip)
            resumed = True
        else:
            resumed = False
            head = head_commit(cwd)
            if head is None:
                raise DatasetError(
                    f"{cwd}: nothing committed; commit the project before publishing"
                )
            files = changed_files(cwd)
            tag = next_tag(cwd, v.dataset, v.schema)
            if not succeeds(cwd, "check-ref-format", f"refs/tags/{tag}"):
                raise ConfigError(
                    f"params.yaml: key 'dataset.name': {tag!r} is not a valid git tag name"
                )
            if files:
                subject, body = _messages(v, tag, files, None)
                git(cwd, "add", "--", *files)
                git(
                    cwd,
                    *identity_args(cwd),
                    "commit",
                    "--quiet",
                    "-m",
                    subject,
                    "-m",
                    body,
                    "--",
                    *files,
                )
                commit, parent = rev(cwd, "HEAD"), head
            else:
                # no change against HEAD: tag HEAD (a fresh clone's data, or a publish commit an
                # interrupted attempt left untagged) — never an empty commit
                commit, parent = head, _own_publish_commit(cwd, head, tip)
            subject, body = _messages(v, tag, files, commit)
            try:
                git(
                    cwd,
                    *identity_args(cwd),
                    "tag",
                    "-a",
                    "-m",
                    subject,
                    "-m",
                    body,
                    "--end-of-options",
                    tag,
                    commit,
                )
            except GitError as err:
                _unwind(cwd, None, commit, parent, log)
                raise PublishInterrupted(
                    f"git tag {tag} failed, nothing published{' (commit rolled back)' if parent else ''}: {err}"
                ) from None
            if target is None:
                return result(
                    True,
                    f"published {tag} at commit {commit[:12]}: {_examples(v.num_examples)} examples, "
                    f"fingerprint {v.fingerprint[:12]} — local only (no git remote configured)",
                    _version(cwd, v.dataset, tag),
                    files,
                )
        state, text = push_atomic(cwd, target, commit, tag, tip)
        if state == "ok":
            return result(
                True,
                f"published {tag} at commit {commit[:12]}: {_examples(v.num_examples)} examples, "
                f"fingerprint {v.fingerprint[:12]}, pushed to {where}"
                + (" (an earlier attempt's tag, now pushed)" if resumed else ""),
                _version(cwd, v.dataset, tag),
                files,
            )
        _unwind(cwd, tag, commit, parent, log)
        if state in ("refused", "unreachable"):
            raise RemoteError(
                f"git push of {tag} to {target.url} {state}; commit and tag rolled back, nothing published: {text}"
            )
        if state == "moved":
            new_tip = remote_tip(cwd, target)
            if parent is None or new_tip is None:
                raise PublishConflict(
                    f"the remote branch {target.branch} moved and commit {commit[:12]} is not a publish commit "
                    "that can be rebased: pull the branch into the workspace, then publish; nothing published"
                )
            rebase(cwd, parent, new_tip, log)
        # "tag-exists": the next attempt fetches the remote's tags and takes the next free name
        log(f"git push of {tag} {state}; trying again: {text}")
    raise RemoteError(
        f"git push to {target.url if target else '?'} kept being refused after {PUSH_ATTEMPTS} attempts; nothing published"
    )


def _version(cwd: Path, dataset: str, tag: str) -> PublishedVersion:
    return next(pv for pv in published_versions(cwd, dataset) if pv.tag == tag)


def _own_publish_commit(cwd: Path, commit: str, tip: str | None) -> str | None:
    """The parent of `commit` when it is a publish commit the remote does not hold (so it may be
    undone or rebuilt); None otherwise."""
    if tip is not None and is_ancestor(cwd, commit, tip):
        return None
    return _publish_commit_parent(cwd, commit)
