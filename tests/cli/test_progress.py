"""Progress bars: every long step reports up to the total it announced; the CLI draws bars on
stderr only when stderr is a terminal (or DATAOPS_PROGRESS=1), and they change no output byte."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from dataops.cli.progress import NO_PROGRESS, Progress, Tick
from dataops.fsutil import sha256_file
from tests.support.progress_capture import final_frame, run_cli_on_terminal
from tests.support.project import VENV_BIN, small_params, tool_env

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Recording(Progress):
    """Keeps every step's announced total and how far it got."""

    def __init__(self) -> None:
        self.steps: dict[str, list] = {}  # description -> [total, done, unit]

    def task(self, description: str, total: int | None = None, unit: str = "rows") -> Tick:
        step = self.steps.setdefault(description, [total, 0, unit])

        def tick(n: int = 1) -> None:
            step[1] += n

        return tick


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_stages(root: Path, progress: Progress) -> Path:
    """The whole pipeline on 60 sample rows, each stage given `progress`."""
    from dataops.fsutil import process_scratch
    from dataops.stages.ingest import run_ingest
    from dataops.stages.pipeline import PipelinePaths
    from dataops.stages.preprocess import run_preprocess
    from dataops.stages.sample import generate_sample
    from dataops.stages.serialize import run_serialize
    from dataops.stages.validate import run_validate

    p = small_params(60)
    paths = PipelinePaths(root)
    with process_scratch():
        generate_sample(paths.sample, p.sample, progress)
        run_ingest(p.ingest, root, paths.snapshot, p.dataset.on_error, progress)
        run_preprocess(
            p.preprocess, paths.snapshot, paths.preprocessed, p.dataset.on_error, progress
        )
        run_serialize(p.serialize, p.dataset, paths.preprocessed, paths.tfrecords, progress)
        r = run_validate(p.validate_, paths.tfrecords, paths.report, progress)
    assert r.ok, r.violations
    return paths.tfrecords


def test_every_stage_reports_progress_up_to_its_total_and_changes_no_byte(tmp_path):
    rec = Recording()
    run_stages(tmp_path / "watched", rec)
    run_stages(tmp_path / "plain", NO_PROGRESS)
    assert tree(tmp_path / "watched" / "data") == tree(tmp_path / "plain" / "data")

    steps = rec.steps
    assert steps["sample"] == [60, 60, "examples"]
    ingests = {k: v for k, v in steps.items() if k.startswith("ingest ")}
    assert len(ingests) == 3 and all(done == 60 for _, done, _ in ingests.values()), ingests
    assert ingests["ingest images"][0] == 60  # one row per image file: a known total
    assert steps["preprocess (2 passes)"] == [120, 120, "rows"]
    serialized = {k: v for k, v in steps.items() if k.startswith("serialize ")}
    assert sorted(serialized) == ["serialize test", "serialize train", "serialize validation"]
    assert all(total == done and total > 0 for total, done, _ in serialized.values()), serialized
    assert sum(done for _, done, _ in serialized.values()) == 60
    assert steps["validate"] == [60, 60, "records"]


def run_sample(out: Path, *, pty_stderr: bool, env: dict[str, str]) -> bytes:
    """`dataops sample` with stderr a pipe or a pseudo-terminal (100 columns); returns stderr."""
    full_env = tool_env()
    full_env.pop("DATAOPS_PROGRESS", None)
    full_env.update(env)
    cmd = [str(VENV_BIN / "dataops"), "sample", "--num-examples", "40", "--out", str(out)]
    if not pty_stderr:
        r = subprocess.run(cmd, capture_output=True, env=full_env, cwd=out.parent, check=True)
        return r.stderr
    return run_cli_on_terminal(cmd[1:], out.parent, env, stdout_too=False)


def test_cli_draws_bars_only_on_a_terminal_and_they_change_no_byte(tmp_path):
    piped = run_sample(tmp_path / "piped", pty_stderr=False, env={})
    terminal = run_sample(tmp_path / "terminal", pty_stderr=True, env={})
    forced = run_sample(tmp_path / "forced", pty_stderr=False, env={"DATAOPS_PROGRESS": "1"})
    off = run_sample(tmp_path / "off", pty_stderr=True, env={"DATAOPS_PROGRESS": "0"})

    for quiet in (piped, off):
        assert b"\x1b[" not in quiet and b"examples/s" not in quiet, quiet
    for drawn in (terminal, forced):
        text = ANSI.sub(b"", drawn)
        assert re.search(rb"sample .*40/40 .*examples/s", text), text
    want = tree(tmp_path / "piped")
    assert len(want) == 40 + 2
    for other in ("terminal", "forced", "off"):
        assert tree(tmp_path / other) == want, other


def test_final_frame_draws_what_a_terminal_shows():
    raw = b"\x1b[?25la 1/2\r\x1b[2Ka 2/2\nb 0/1\r\x1b[2K\x1b[1A\x1b[2Ka 2/2 done\nb 1/1\n\x1b[?25h"
    assert final_frame(raw) == "a 2/2 done\nb 1/1\n"
