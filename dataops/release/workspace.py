"""The workspace files a publish commits (`PUBLISHED_FILES`): which changed, putting them back as
committed, and `params.yaml` as last published."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dataops import naming
from dataops.errors import ConfigError
from dataops.release.git import git, head_commit, succeeds

PUBLISHED_FILES = ("params.yaml", "dvc.lock", naming.REPORT_FILE, "reports/metrics.json")


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
    if not head_commit(cwd):
        return []
    restored = []
    for f in changed_files(cwd):
        if succeeds(cwd, "cat-file", "-e", f"HEAD:{f}"):
            git(cwd, "checkout", "HEAD", "--", f)
            log(f"restored {f} as committed at HEAD ({head_commit(cwd)[:12]})")  # type: ignore[index]
            restored.append(f)
        else:
            log(f"{f} is not committed at HEAD; left as it is")
    if not restored:
        log("workspace already as committed at HEAD: nothing to restore")
    return restored


def committed_params(cwd: Path | str) -> dict[str, Any]:
    """`params.yaml` as committed at HEAD (the last published state), not as a run left the workspace;
    the workspace file when the repository has no commit yet."""
    cwd = Path(cwd)
    text = git(cwd, "show", "HEAD:params.yaml", check=False) if head_commit(cwd) else ""
    if not text:
        text = (cwd / "params.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{cwd}/params.yaml (HEAD): expected a mapping at the top level")
    return data
