"""SIGTERM/SIGINT while a stage (preprocess, serialize) runs on Beam (DirectRunner, two worker threads), as a user or
Airflow sends them: exit 143/130 with exactly one line — not the tracebacks and ERROR logs of
Beam's worker and gRPC threads torn down mid-call, nor Beam's import warnings — no visible
partial output, no scratch left, and the output byte-identical to an uninterrupted run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.faults import error_lines, leftovers, tree_digest, write_params
from tests.support.project import REPO, VENV_BIN, tool_env

pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")

THREADS_2 = "--direct_num_workers=2 --direct_running_mode=multi_threading"


def _start(stage: str, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "dataops"), stage, "--engine", "beam", "--beam-options", THREADS_2],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**tool_env(), "TMPDIR": str(root / "tmp")},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _pipeline_running(root: Path) -> bool:
    """The Beam driver has made its work folder: the pipeline is planned or running."""
    return any((root / "tmp" / "dataops-scratch").glob("*/dataops-beam-*"))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("beam-signals")
    (root / "tmp").mkdir()
    write_params(root)
    for stage in ("sample", "ingest", "preprocess", "serialize"):
        p = subprocess.run(
            [str(VENV_BIN / "dataops"), stage],
            cwd=root,
            capture_output=True,
            text=True,
            env={**tool_env(), "TMPDIR": str(root / "tmp")},
        )
        assert p.returncode == 0, p.stderr
    return root, {s: tree_digest(root / "data" / s) for s in ("preprocessed", "tfrecords")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "out", "within"),
    [("preprocess", "preprocessed", 0.8), ("serialize", "tfrecords", 0.8)],
)
def test_a_signal_while_beam_runs_is_one_line_and_leaves_nothing(project, stage, out, within):
    root, reference = project
    rng = random.Random(f"beam-signals-{stage}")
    interrupted = 0
    for i in range(3):
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGINT
        p = _start(stage, root)
        deadline = time.monotonic() + 120
        while not _pipeline_running(root) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, within))  # the pipeline's length on this data
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=120)
        if p.returncode == 0:  # finished before the signal landed
            assert f"{stage}.done" in stdout, stderr
        else:
            interrupted += 1
            assert p.returncode == 128 + sig, (p.returncode, stderr)
            lines = error_lines(stderr)
            assert len(lines) == 1, stderr
            assert lines[0].startswith(f"error: interrupted ({sig.name}); "), lines
        assert "Traceback" not in stderr and "WARNING" not in stderr, stderr
        assert tree_digest(root / "data" / out) == reference[out]
        assert leftovers(root) == []
        assert list((root / "tmp" / "dataops-scratch").iterdir()) == []
    assert interrupted >= 1, "no signal landed while the pipeline ran"


def test_a_signal_inside_a_finalizer_is_not_printed_and_still_stops_the_run():
    """A signal that lands in a `__del__` or a weakref callback (Beam's teardown is full of
    them) is swallowed by Python with an "Exception ignored in" traceback on stderr; it is
    recorded, so the next check stops the run — and nothing is printed for the swallowed one."""
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO)!r})
from dataops.errors import Interrupted, install_signal_handlers, raise_if_interrupted
install_signal_handlers()
class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
Finalized()
try:
    raise_if_interrupted()
except Interrupted as err:
    print("stopped", err.signum)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == f"stopped {int(signal.SIGTERM)}", (r.stdout, r.stderr)
    assert r.stderr == ""


def test_a_cleanup_that_hangs_after_a_signal_cannot_keep_the_process_alive(tmp_path):
    """Seen with Beam: after SIGTERM its runner joined a worker thread forever, and the process
    never ended. Past `$DATAOPS_STOP_GRACE` seconds after the signal it exits 128+signal with
    one line."""
    code = f"""
import os, signal, sys, threading
sys.path.insert(0, {str(REPO)!r})
from dataops.errors import install_signal_handlers
install_signal_handlers()
stuck = threading.Thread(target=threading.Event().wait)  # a worker that never ends
stuck.start()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    threading.Event().wait(5)
finally:
    stuck.join()  # a library's cleanup, joining it forever
"""
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**tool_env(), "DATAOPS_STOP_GRACE": "1"},
    )
    assert r.returncode == 143, r.stderr
    assert r.stderr.splitlines() == [
        "error: interrupted (SIGTERM); cleanup did not finish in time, stopping now"
        " (the next run removes what is left)"
    ]
