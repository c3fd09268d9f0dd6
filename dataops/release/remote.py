"""The git remote of a publish: fetching its tip and tags, an atomic push, and rebasing the publish
commit when the branch moved; the errors a publish ends in when a step is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dataops.errors import DataopsError, DatasetError
from dataops.release.dvc import tool_env
from dataops.release.git import GitError, GitTarget, git, is_ancestor, rev, succeeds
from dataops.release.workspace import PUBLISHED_FILES


class PublishInterrupted(DataopsError):
    """A publish step failed and was rolled back; nothing was left half-done and a retry may succeed."""

    retryable = True


class RemoteError(PublishInterrupted):
    """The DVC or git remote could not be reached or refused the push (network, a remote policy)."""


class PublishConflict(DatasetError):
    """The remote branch changed what this version was built from: rerun the pipeline on it."""


def fetch(cwd: Path, target: GitTarget, refspec: str) -> None:
    """`git fetch` of one refspec from the target's remote, quietly, following no tags."""
    git(cwd, "fetch", "--quiet", "--no-tags", "--end-of-options", target.remote, refspec)


def remote_tip(cwd: Path, target: GitTarget) -> str | None:
    """Fetch the target branch and every tag (the remote's tags win over local ones of the same name);
    returns the branch tip, None when the branch does not exist yet. RemoteError when unreachable."""
    try:
        listing = git(
            cwd, "ls-remote", "--end-of-options", target.remote, f"refs/heads/{target.branch}"
        )
        fetch(cwd, target, "+refs/tags/*:refs/tags/*")
        if not listing:
            return None
        fetch(cwd, target, f"refs/heads/{target.branch}")
        return rev(cwd, "FETCH_HEAD")
    except GitError as err:
        raise RemoteError(
            f"git remote {target.url!r} unreachable, nothing published: {err.stderr.strip() or err}"
        ) from None


def remote_has(cwd: Path, target: GitTarget, tag: str) -> bool:
    """True when the remote holds this very tag object (its tags were fetched just before)."""
    try:
        line = git(cwd, "ls-remote", "--end-of-options", target.remote, f"refs/tags/{tag}")
    except GitError as err:
        raise RemoteError(f"git remote {target.url!r} unreachable: {err.stderr.strip()}") from None
    remote_oids = {ln.split("\t")[0] for ln in line.splitlines() if ln.endswith(f"refs/tags/{tag}")}
    return git(cwd, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}") in remote_oids


def push_atomic(
    cwd: Path, target: GitTarget, commit: str, tag: str, tip: str | None
) -> tuple[str, str]:
    """`git push --atomic` of the commit to the branch (unless the remote already has it) and of the tag.
    Returns ("ok" | "moved" | "tag-exists" | "refused" | "unreachable", git's message)."""
    refspecs = [f"refs/tags/{tag}:refs/tags/{tag}"]
    if tip is None or not is_ancestor(cwd, commit, tip):
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


def rebase(cwd: Path, parent: str, tip: str, log) -> None:
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
    tracked = [f for f in PUBLISHED_FILES if succeeds(cwd, "cat-file", "-e", f"HEAD:{f}")]
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
