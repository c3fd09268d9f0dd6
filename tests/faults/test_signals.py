"""SIGTERM, SIGINT and kill -9 at seeded random points of every stage, run as a user would:
exit 143/130 with one line, no visible partial output, nothing stale after the next run, and
outputs byte-identical to an uninterrupted run."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.faults import (
    OUTPUTS,
    STAGES,
    error_lines,
    handlers_installed,
    leftovers,
    tree_digest,
    write_params,
)
from tests.support.project import VENV_BIN, tool_env

pytestmark = pytest.mark.slow
RUNS_PER_STAGE = 5


def _start(stage: str, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "dataops"), stage],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**tool_env(), "TMPDIR": str(root / "tmp")},
        # a child of a shell's background job inherits SIGINT ignored; a user's Ctrl-C does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait(cond, p: subprocess.Popen, limit: float = 120.0) -> bool:
    """Poll `cond()` until true (True) or the process ends (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return True
        if p.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("the stage neither started writing nor ended")


def _writing(stage: str, root: Path):
    out = root / OUTPUTS[stage]
    return lambda: any(out.parent.glob(f"{out.name}.incomplete-*"))


def _cli(stage: str, root: Path) -> subprocess.CompletedProcess:
    p = _start(stage, root)
    out, err = p.communicate(timeout=300)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """A project after one uninterrupted run of every stage, with the digests of its outputs."""
    root = tmp_path_factory.mktemp("signals")
    (root / "tmp").mkdir()
    write_params(root)
    for stage in STAGES:
        r = _cli(stage, root)
        assert r.returncode == 0, r.stderr
    return root, {s: tree_digest(root / OUTPUTS[s]) for s in STAGES}


def _scratch(root: Path) -> list[str]:
    d = root / "tmp" / "dataops-scratch"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.mark.parametrize("stage", STAGES)
def test_signals_at_random_points(project, stage: str):
    root, reference = project
    rng = random.Random(f"signals-{stage}")
    out = root / OUTPUTS[stage]
    interrupted = 0
    for i in range(RUNS_PER_STAGE):
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGINT
        p = _start(stage, root)
        started = _wait(lambda p=p: handlers_installed(p.pid), p)
        if started and stage == "validate":  # validate commits only its report, at the end
            time.sleep(rng.uniform(0.0, 2.5))
        elif started and _wait(_writing(stage, root), p):
            time.sleep(rng.uniform(0.0, 0.2))
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=300)
        lines = error_lines(stderr)
        if p.returncode == 0:  # the stage finished before the signal landed
            assert f"{stage}.done" in stdout, (stdout, stderr)
        else:
            interrupted += 1
            assert p.returncode == 128 + sig, (p.returncode, stderr)
            assert len(lines) == 1, lines
            assert lines[0] == f"error: interrupted ({sig.name}); nothing was written" or (
                lines[0].startswith(
                    f"error: interrupted ({sig.name}); already written before the signal: "
                )
            ), lines[0]
            assert "ok=True" not in stdout
            assert "Traceback" not in stderr
        # No partial output is ever visible: the output is the previous version or a complete
        # new one, byte for byte the same; the interrupted run cleaned up after itself.
        assert tree_digest(out) == reference[stage]
        assert leftovers(root) == []
        assert _scratch(root) == []
    print(f"{stage}: {interrupted} of {RUNS_PER_STAGE} runs interrupted")
    assert interrupted >= 1, "no signal landed while the stage was running"


@pytest.mark.parametrize("stage", STAGES[:4])
def test_kill_9_leftovers_are_cleaned_by_the_next_run(project, stage: str):
    root, reference = project
    rng = random.Random(f"kill-{stage}")
    out = root / OUTPUTS[stage]
    p = _start(stage, root)
    writing = _wait(_writing(stage, root), p)
    if writing:
        time.sleep(rng.uniform(0.0, 0.1))
    p.kill()
    p.communicate(timeout=60)
    print(
        f"{stage}: killed while writing: {writing}; left behind: {leftovers(root)} {_scratch(root)}"
    )
    assert tree_digest(out) == reference[stage]  # the previous version is untouched
    r = _cli(stage, root)
    assert r.returncode == 0, r.stderr
    assert tree_digest(out) == reference[stage]
    assert leftovers(root) == []
    assert _scratch(root) == []
    assert not any(out.parent.glob(f"{out.name}.old-*"))
