"""Publish a validated dataset version as one transaction: DVC push, git commit, tag, git push.

Tag scheme: `<dataset>-v<major>.<build>`. The first version of a dataset is `v1.0`; each later
published version that keeps the feature schema (names, kinds, dtypes, shapes, encodings) bumps
`build` (`v1.1`, `v1.2`, ...); one that changes the schema bumps `major` and resets `build`
(`v2.0`). The annotated tag's message records the dataset, schema hash and examples per split,
and ends with three git trailers that identify the version without a checkout::

    Dataops-Dataset: <dataset name>
    Dataops-Version: <vN.M>
    Dataops-Fingerprint: <sha256 hex>

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

import configparser
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from dataops import naming
from dataops.airflow_tasks import StageFailed, run_dvc, tool_env
from dataops.artifacts import PublishedReport, ValidationReport
from dataops.errors import ConfigError, DataopsError, DatasetError
from dataops.fingerprint import schema_hash as _schema_hash
from dataops.metadata import read_metadata

PUBLISHED_FILES = ("params.yaml", "dvc.lock", naming.REPORT_FILE, "reports/metrics.json")
DATASET_DIR = naming.DATASET_DIR
REPORT = naming.REPORT_FILE
TAG_RE = re.compile(r"^(?P<dataset>.+)-v(?P<major>\d+)\.(?P<build>\d+)$")
GIT_IDENTITY = {"user.name": "dataops publish", "user.email": "dataops@localhost"}
TRAILER_DATASET = "Dataops-Dataset"
TRAILER_VERSION = "Dataops-Version"
TRAILER_FINGERPRINT = "Dataops-Fingerprint"
ENV_GIT_REMOTE = "DATAOPS_GIT_REMOTE"
ENV_GIT_BRANCH = "DATAOPS_GIT_BRANCH"
PUSH_ATTEMPTS = 3


class GitError(DataopsError):
    """A git command failed; `returncode` and `stderr` are git's own."""

    def __init__(self, message: str, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class PublishInterrupted(DataopsError):
    """A publish step failed and was rolled back; nothing was left half-done and a retry may succeed."""

    retryable = True


class RemoteError(PublishInterrupted):
    """The DVC or git remote could not be reached or refused the push (network, a remote policy)."""


class PublishConflict(DatasetError):
    """The remote branch changed what this version was built from: rerun the pipeline on it."""


@dataclass(frozen=True)
class GitTarget:
    """Where published versions go: a git remote (name or URL) and a branch."""

    remote: str
    branch: str
    url: str = field(metadata={"doc": "The remote's URL with any credentials removed."})


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


# --- git -------------------------------------------------------------------------------------


def git(cwd: Path, *args: str, check: bool = True, strip: bool = True) -> str:
    """Run `git ARGS` in `cwd` (argument list, no shell); return stdout (stripped unless `strip=False`)."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        shown = " ".join(a.splitlines()[0][:60] if a else "''" for a in args)
        raise GitError(
            f"`git {shown}` failed in {cwd} (exit {proc.returncode}): {detail}",
            proc.returncode,
            proc.stderr,
        )
    return proc.stdout.strip() if strip else proc.stdout


def _ok(cwd: Path, *args: str) -> bool:
    return (
        subprocess.run(
            ["git", *args], cwd=cwd, env=tool_env(), capture_output=True, check=False
        ).returncode
        == 0
    )


def _identity_args(cwd: Path) -> list[str]:
    out = []
    for key, default in GIT_IDENTITY.items():
        if not git(cwd, "config", "--get", key, check=False):
            out += ["-c", f"{key}={default}"]
    return out


def _rev(cwd: Path, ref: str) -> str:
    return git(cwd, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")


def _head(cwd: Path) -> str | None:
    return git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False) or None


def _is_ancestor(cwd: Path, a: str, b: str) -> bool:
    return _ok(cwd, "merge-base", "--is-ancestor", "--end-of-options", a, b)


def check_tag_name(cwd: Path | str, dataset: str) -> str:
    """The first tag of `dataset` (`<dataset>-v1.0`) as a full ref; a ConfigError when git refuses the name."""
    ref = f"refs/tags/{dataset}-v1.0"
    if not dataset or not _ok(Path(cwd), "check-ref-format", ref):
        raise ConfigError(
            f"params.yaml: key 'dataset.name': {dataset!r} cannot name a git tag ({ref!r} fails `git check-ref-format`); "
            "use letters, digits, '-', '_' and '.' without '..', a leading '.' or a trailing '.lock'"
        )
    return ref


def strip_credentials(url: str) -> str:
    """`url` without a password or token (`https://user:tok@host/x` -> `https://host/x`)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def git_target(
    cwd: Path | str, remote: str | None = None, branch: str | None = None
) -> GitTarget | None:
    """The configured git remote and branch (arguments, else `$DATAOPS_GIT_REMOTE`/`$DATAOPS_GIT_BRANCH`);
    None when no remote is configured (local only). The branch defaults to the checked-out one."""
    cwd = Path(cwd)
    remote = (remote if remote is not None else os.environ.get(ENV_GIT_REMOTE, "")).strip()
    if not remote:
        return None
    branch = (branch or os.environ.get(ENV_GIT_BRANCH, "")).strip()
    if not branch:
        branch = git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if not branch:
            raise ConfigError(
                f"{cwd}: HEAD is detached; set {ENV_GIT_BRANCH} to the branch versions are pushed to"
            )
    if not _ok(cwd, "check-ref-format", f"refs/heads/{branch}"):
        raise ConfigError(f"{ENV_GIT_BRANCH}: {branch!r} is not a valid git branch name")
    url = remote
    if remote in git(cwd, "remote").split():
        url = git(cwd, "remote", "get-url", "--", remote)
    return GitTarget(remote=remote, branch=branch, url=strip_credentials(url))


def dvc_remote_url(cwd: Path | str) -> str | None:
    """The URL of the default DVC remote (`.dvc/config`, overridden by `.dvc/config.local`), credentials
    removed; a local path is made absolute. None when no default remote is configured."""
    dvc_dir = Path(cwd) / ".dvc"
    cp = configparser.ConfigParser()
    for fname in ("config", "config.local"):
        try:
            cp.read(dvc_dir / fname, encoding="utf-8")
        except configparser.Error:
            continue
    core = next((sec for sec in cp.sections() if sec.strip("'\" ") == "core"), None)
    name = cp.get(core, "remote", fallback=None) if core else None
    if not name:
        return None
    sec = next(
        (
            raw
            for raw in cp.sections()
            if re.fullmatch(rf"""'?remote\s+"{re.escape(name)}"'?""", raw.strip())
        ),
        None,
    )
    url = cp.get(sec, "url", fallback=None) if sec else None
    if not url:
        return None
    if "://" not in url:
        return str((dvc_dir / url).resolve())
    return strip_credentials(url)


# --- versions --------------------------------------------------------------------------------


def schema_hash(metadata: dict[str, Any]) -> str:
    """The feature schema's hash (`dataops.fingerprint.schema_hash`) of a metadata.json."""
    return _schema_hash(metadata.get("features", []))


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


def committed_params(cwd: Path | str) -> dict[str, Any]:
    """`params.yaml` as committed at HEAD (the last published state), not as a run left the workspace;
    the workspace file when the repository has no commit yet."""
    cwd = Path(cwd)
    text = git(cwd, "show", "HEAD:params.yaml", check=False) if _head(cwd) else ""
    if not text:
        text = (cwd / "params.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{cwd}/params.yaml (HEAD): expected a mapping at the top level")
    return data


# --- the workspace ---------------------------------------------------------------------------


def changed_files(cwd: Path) -> list[str]:
    """The published files that differ from HEAD (modified, added or untracked), in PUBLISHED_FILES order."""
    raw = git(
        cwd,
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--",
        *PUBLISHED_FILES,
        strip=False,
    )
    changed = {entry[3:] for entry in raw.split("\0") if len(entry) > 3}
    return [f for f in PUBLISHED_FILES if f in changed]


def restore_workspace(cwd: Path | str, log: Callable[[str], None] = print) -> list[str]:
    """Put `params.yaml`, `dvc.lock` and the validation report back as committed at HEAD (the last
    published state), so the next run starts clean. Returns the files restored (logged one a line);
    a file HEAD does not hold is left in place and said so."""
    cwd = Path(cwd)
    if not _head(cwd):
        return []
    restored = []
    for f in changed_files(cwd):
        if _ok(cwd, "cat-file", "-e", f"HEAD:{f}"):
            git(cwd, "checkout", "HEAD", "--", f)
            log(f"restored {f} as committed at HEAD ({_head(cwd)[:12]})")  # type: ignore[index]
            restored.append(f)
        else:
            log(f"{f} is not committed at HEAD; left as it is")
    if not restored:
        log("workspace already as committed at HEAD: nothing to restore")
    return restored


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
    if tag and _ok(cwd, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"):
        git(cwd, "update-ref", "-d", f"refs/tags/{tag}")
        log(f"rolled back: deleted local tag {tag}")
    if commit and parent and _head(cwd) == commit:
        git(cwd, "reset", "--quiet", "--soft", parent)
        git(cwd, "reset", "--quiet", parent, "--", *[f for f in PUBLISHED_FILES])
        log(
            f"rolled back: commit {commit[:12]} undone (HEAD back at {parent[:12]}); params.yaml, dvc.lock and the report kept in the workspace"
        )


# --- the remote ------------------------------------------------------------------------------


def _remote_tip(cwd: Path, target: GitTarget) -> str | None:
    """Fetch the target branch and every tag (the remote's tags win over local ones of the same name);
    returns the branch tip, None when the branch does not exist yet. RemoteError when unreachable."""
    try:
        listing = git(
            cwd, "ls-remote", "--end-of-options", target.remote, f"refs/heads/{target.branch}"
        )
        git(
            cwd,
            "fetch",
            "--quiet",
            "--no-tags",
            "--end-of-options",
            target.remote,
            "+refs/tags/*:refs/tags/*",
        )
        if not listing:
            return None
        git(
            cwd,
            "fetch",
            "--quiet",
            "--no-tags",
            "--end-of-options",
            target.remote,
            f"refs/heads/{target.branch}",
        )
        return _rev(cwd, "FETCH_HEAD")
    except GitError as err:
        raise RemoteError(
            f"git remote {target.url!r} unreachable, nothing published: {err.stderr.strip() or err}"
        ) from None


def _remote_has(cwd: Path, target: GitTarget, tag: str) -> bool:
    """True when the remote holds this very tag object (its tags were fetched just before)."""
    try:
        line = git(cwd, "ls-remote", "--end-of-options", target.remote, f"refs/tags/{tag}")
    except GitError as err:
        raise RemoteError(f"git remote {target.url!r} unreachable: {err.stderr.strip()}") from None
    remote_oids = {ln.split("\t")[0] for ln in line.splitlines() if ln.endswith(f"refs/tags/{tag}")}
    return git(cwd, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}") in remote_oids


def _push(cwd: Path, target: GitTarget, commit: str, tag: str, tip: str | None) -> tuple[str, str]:
    """`git push --atomic` of the commit to the branch (unless the remote already has it) and of the tag.
    Returns ("ok" | "moved" | "tag-exists" | "refused" | "unreachable", git's message)."""
    refspecs = [f"refs/tags/{tag}:refs/tags/{tag}"]
    if tip is None or not _is_ancestor(cwd, commit, tip):
        refspecs.insert(0, f"{commit}:refs/heads/{target.branch}")
    proc = subprocess.run(
        ["git", "push", "--atomic", "--porcelain", "--end-of-options", target.remote, *refspecs],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode == 0:
        return "ok", text
    if "(non-fast-forward)" in text or "(fetch first)" in text or "stale info" in text:
        return "moved", text
    if "(already exists)" in text:
        return "tag-exists", text
    if "[remote rejected]" in text or "[rejected]" in text:
        return "refused", text
    return "unreachable", text


def _rebase(cwd: Path, parent: str, tip: str, log) -> None:
    """Move the workspace from `parent` to the remote `tip`, keeping the run's published files: the
    publish commit is then made again on the tip. PublishConflict when the remote changed a file the
    version was built from (a dep in dvc.lock, or dvc.yaml) — then the workspace is moved to the tip
    with its published files as committed there, and the run must be repeated."""
    changed = {
        f for f in git(cwd, "diff", "--name-only", "-z", parent, tip, strip=False).split("\0") if f
    }
    lock = yaml.safe_load((cwd / "dvc.lock").read_text(encoding="utf-8")) or {}
    deps = {"dvc.yaml"} | {
        str(d.get("path"))
        for st in (lock.get("stages") or {}).values()
        for d in st.get("deps") or []
    }
    hit = sorted(
        f for f in changed if any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
    )
    saved = {f: (cwd / f).read_bytes() for f in PUBLISHED_FILES if (cwd / f).is_file()}
    tracked = [f for f in PUBLISHED_FILES if _ok(cwd, "cat-file", "-e", f"HEAD:{f}")]
    if tracked:
        git(cwd, "checkout", "HEAD", "--", *tracked)
    for f in saved:
        if f not in tracked:
            (cwd / f).unlink()  # untracked here, maybe tracked on the tip: kept in `saved`
    try:
        git(cwd, "reset", "--quiet", "--keep", tip)
    except GitError as err:
        for f, data in saved.items():
            (cwd / f).write_bytes(data)
        raise PublishConflict(
            f"{cwd}: cannot move the workspace to the remote tip {tip[:12]}: {err.stderr.strip()}; nothing published"
        ) from None
    if hit:
        raise PublishConflict(
            f"the remote branch moved to {tip[:12]} and changed {', '.join(hit)}, which this version was built from: "
            f"nothing published; the workspace is now at {tip[:12]} — run the pipeline again"
        )
    for f, data in saved.items():
        (cwd / f).parent.mkdir(parents=True, exist_ok=True)
        (cwd / f).write_bytes(data)
    log(
        f"the remote branch moved: workspace rebased onto {tip[:12]}, publishing again on top of it"
    )


# --- the transaction -------------------------------------------------------------------------


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
            commit=pv.commit if pv else _head(cwd),
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
        tip = _remote_tip(cwd, target) if target else None
        versions = published_versions(cwd, v.dataset)
        same = [pv for pv in versions if pv.fingerprint == v.fingerprint]
        if same:
            pv = same[-1]
            if target is None or _remote_has(cwd, target, pv.tag):
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
            head = _head(cwd)
            if head is None:
                raise DatasetError(
                    f"{cwd}: nothing committed; commit the project before publishing"
                )
            files = changed_files(cwd)
            tag = next_tag(cwd, v.dataset, v.schema)
            if not _ok(cwd, "check-ref-format", f"refs/tags/{tag}"):
                raise ConfigError(
                    f"params.yaml: key 'dataset.name': {tag!r} is not a valid git tag name"
                )
            if files:
                subject, body = _messages(v, tag, files, None)
                git(cwd, "add", "--", *files)
                git(
                    cwd,
                    *_identity_args(cwd),
                    "commit",
                    "--quiet",
                    "-m",
                    subject,
                    "-m",
                    body,
                    "--",
                    *files,
                )
                commit, parent = _rev(cwd, "HEAD"), head
            else:
                # no change against HEAD: tag HEAD (a fresh clone's data, or a publish commit an
                # interrupted attempt left untagged) — never an empty commit
                commit, parent = head, _own_publish_commit(cwd, head, tip)
            subject, body = _messages(v, tag, files, commit)
            try:
                git(
                    cwd,
                    *_identity_args(cwd),
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
        state, text = _push(cwd, target, commit, tag, tip)
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
            new_tip = _remote_tip(cwd, target)
            if parent is None or new_tip is None:
                raise PublishConflict(
                    f"the remote branch {target.branch} moved and commit {commit[:12]} is not a publish commit "
                    "that can be rebased: pull the branch into the workspace, then publish; nothing published"
                )
            _rebase(cwd, parent, new_tip, log)
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
    if tip is not None and _is_ancestor(cwd, commit, tip):
        return None
    return _publish_commit_parent(cwd, commit)
