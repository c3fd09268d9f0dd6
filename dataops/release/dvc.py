"""DVC as a subprocess: run a stage (or any `dvc` command) with an argument list, stream its output,
and tell a locked repository (retryable) from a failed stage. Publish and the Airflow tasks call it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dataops.errors import DataopsError

LOCK_MESSAGE = "Unable to acquire lock"


class StageFailed(DataopsError):
    """A `dvc` command exited non-zero; the message carries DVC's own last lines.

    `command_exit` is the exit code of the stage's own command when DVC reports it
    ("exited with N"): `dataops` exits 2 for a config error and 1 for bad data or a failed
    validation — both fail again the same way, so such a failure is not `retryable`."""

    def __init__(self, message: str, command_exit: int | None = None) -> None:
        super().__init__(message)
        self.command_exit = command_exit
        self.retryable = command_exit not in (1, 2)


class RepoLocked(DataopsError):
    """DVC's repository lock stayed held longer than the wait allowed."""


def workspace_dir() -> Path:
    """The project DVC and git work in: `$DATAOPS_PROJECT_DIR`, else the repository holding this package."""
    env = os.environ.get("DATAOPS_PROJECT_DIR")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


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
        exits = re.findall(r"exited with (-?\d+)", text)
        raise StageFailed(
            f"`dvc {' '.join(args)}` failed with exit code {code} in {cwd}:\n" + "\n".join(errors),
            command_exit=int(exits[-1]) if exits else None,
        )


def is_retryable(err: BaseException) -> bool:
    """Whether running the task again can help: a config error, bad data, a failed validation or a
    stage command that exited 1 or 2 fail the same way again; the DVC lock, the network and a remote
    refusing a push may not. Errors this project does not know are retried."""
    if isinstance(err, DataopsError):
        return bool(getattr(err, "retryable", False)) or isinstance(err, RepoLocked)
    return True


def run_stage(
    stage: str,
    cwd: Path,
    log: Callable[[str], None] = print,
    lock_wait_s: float = 600.0,
    poll_s: float = 2.0,
) -> None:
    """Reproduce one DVC stage, and only it: `dvc repro --single-item <stage>`."""
    run_dvc(["repro", "--single-item", stage], cwd, log, lock_wait_s=lock_wait_s, poll_s=poll_s)
