"""git for publishing: one subprocess per call (argument list, no shell), the remote and branch
versions go to, and the DVC remote's URL — credentials removed from every URL shown."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dataops.errors import ConfigError, DataopsError
from dataops.release.dvc import tool_env

GIT_IDENTITY = {"user.name": "dataops publish", "user.email": "dataops@localhost"}
ENV_GIT_REMOTE = "DATAOPS_GIT_REMOTE"
ENV_GIT_BRANCH = "DATAOPS_GIT_BRANCH"


class GitError(DataopsError):
    """A git command failed; `returncode` and `stderr` are git's own."""

    def __init__(self, message: str, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class GitTarget:
    """Where published versions go: a git remote (name or URL) and a branch."""

    remote: str
    branch: str
    url: str = field(metadata={"doc": "The remote's URL with any credentials removed."})


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


def succeeds(cwd: Path, *args: str) -> bool:
    return (
        subprocess.run(
            ["git", *args], cwd=cwd, env=tool_env(), capture_output=True, check=False
        ).returncode
        == 0
    )


def identity_args(cwd: Path) -> list[str]:
    out = []
    for key, default in GIT_IDENTITY.items():
        if not git(cwd, "config", "--get", key, check=False):
            out += ["-c", f"{key}={default}"]
    return out


def rev(cwd: Path, ref: str) -> str:
    return git(cwd, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")


def head_commit(cwd: Path) -> str | None:
    return git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False) or None


def is_ancestor(cwd: Path, a: str, b: str) -> bool:
    return succeeds(cwd, "merge-base", "--is-ancestor", "--end-of-options", a, b)


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
    if not succeeds(cwd, "check-ref-format", f"refs/heads/{branch}"):
        raise ConfigError(f"{ENV_GIT_BRANCH}: {branch!r} is not a valid git branch name")
    url = remote
    if remote in git(cwd, "remote").split():
        url = git(cwd, "remote", "get-url", "--", remote)
    return GitTarget(remote=remote, branch=branch, url=strip_credentials(url))


def dvc_config(dvc_dir: Path) -> configparser.ConfigParser:
    """The DVC config of a repo as DVC reads it: `.dvc/config`, then `.dvc/config.local` over it;
    a file that is missing or does not parse is passed over."""
    cp = configparser.ConfigParser()
    for fname in ("config", "config.local"):
        try:
            cp.read(dvc_dir / fname, encoding="utf-8")
        except configparser.Error:
            continue
    return cp


def dvc_remote_url(cwd: Path | str) -> str | None:
    """The URL of the default DVC remote (`.dvc/config`, overridden by `.dvc/config.local`), credentials
    removed; a local path is made absolute. None when no default remote is configured."""
    dvc_dir = Path(cwd) / ".dvc"
    cp = dvc_config(dvc_dir)
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
