"""What the Airflow tasks do, without Airflow: run a DVC stage as a subprocess and stream its output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dataops.errors import DataopsError

LOCK_MESSAGE = "Unable to acquire lock"


class StageFailed(DataopsError):
    """A `dvc` command exited non-zero; the message carries DVC's own last lines."""


class RepoLocked(DataopsError):
    """DVC's repository lock stayed held longer than the wait allowed."""


def workspace_dir() -> Path:
    """The project DVC and git work in: `$DATAOPS_PROJECT_DIR`, else the repository holding this package."""
    env = os.environ.get("DATAOPS_PROJECT_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def tool_env() -> dict[str, str]:
    """The environment for `dvc`/`git`: this interpreter's bin dir first on PATH (stage commands call `dataops`)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        [bindir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir]]
    )
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def dvc_executable() -> str:
    cand = Path(sys.executable).parent / "dvc"
    return str(cand) if cand.exists() else "dvc"


def run_streamed(
    argv: Sequence[str], cwd: Path, log: Callable[[str], None] = print, tail: int = 20
) -> tuple[int, list[str]]:
    """Run `argv` (a list, never a shell string) in `cwd`, passing each output line to `log`; returns (exit code, last lines)."""
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    last: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        log(line)
        last = [*last[-(tail - 1) :], line]
    return proc.wait(), last


def run_dvc(
    args: Sequence[str],
    cwd: Path,
    log: Callable[[str], None] = print,
    lock_wait_s: float = 600.0,
    poll_s: float = 2.0,
) -> None:
    """`dvc ARGS` in `cwd`. DVC's lock error (another dvc holds the repository) is not a failure:
    wait `poll_s` and run again, for up to `lock_wait_s` (`dvc --wait-for-lock` would wait without bound)."""
    argv = [dvc_executable(), *args]
    deadline = time.monotonic() + lock_wait_s
    while True:
        log(f"$ {' '.join(argv)}   (in {cwd})")
        code, last = run_streamed(argv, cwd, log)
        if code == 0:
            return
        text = "\n".join(last)
        if LOCK_MESSAGE in text:
            if time.monotonic() < deadline:
                log(
                    f"DVC repository lock is held by another process; waiting {poll_s:g}s and retrying"
                )
                time.sleep(poll_s)
                continue
            raise RepoLocked(f"{cwd}: DVC repository lock still held after {lock_wait_s:g}s")
        errors = [ln for ln in last[-10:] if ln.strip()]
        raise StageFailed(
            f"`dvc {' '.join(args)}` failed with exit code {code} in {cwd}:\n" + "\n".join(errors)
        )


def run_stage(
    stage: str, cwd: Path, log: Callable[[str], None] = print, lock_wait_s: float = 600.0
) -> None:
    """Reproduce one DVC stage, and only it: `dvc repro --single-item <stage>`."""
    run_dvc(["repro", "--single-item", stage], cwd, log, lock_wait_s=lock_wait_s)
