"""Progress bars: every long step reports up to the total it announced; the CLI draws bars on
stderr only when stderr is a terminal (or DATAOPS_PROGRESS=1), and they change no output byte."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dataops.fsutil import sha256_file
from dataops.progress import NO_PROGRESS, Progress, Tick
from tests.conftest import VENV_BIN, small_params

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
    from dataops.ingest import run_ingest
    from dataops.pipeline import PipelinePaths
    from dataops.preprocess import run_preprocess
    from dataops.sample import generate_sample
    from dataops.serialize import run_serialize
    from dataops.validate import run_validate

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
    full_env = {k: v for k, v in os.environ.items() if k != "DATAOPS_PROGRESS"}
    full_env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env)
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


def final_frame(raw: bytes) -> str:
    """What a terminal shows once `raw` (rich's output: text, CR, cursor-up, erase-line) is drawn."""
    screen: list[list[str]] = [[]]
    row = col = 0
    text = raw.decode("utf-8", "replace")
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", text):
        if not token:
            continue
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
        elif token.startswith("\x1b["):
            arg, cmd = token[2:-1], token[-1]
            if cmd == "A":
                row = max(0, row - int(arg or 1))
            elif cmd == "K":
                while len(screen) <= row:
                    screen.append([])
                screen[row] = [] if arg == "2" else screen[row][:col]
            continue  # colours, cursor visibility
        else:
            while len(screen) <= row:
                screen.append([])
            line = screen[row]
            line.extend(" " * (col - len(line)))
            line[col : col + len(token)] = list(token)
            col += len(token)
    return "\n".join("".join(line).rstrip() for line in screen).strip("\n") + "\n"


def test_final_frame_draws_what_a_terminal_shows():
    raw = b"\x1b[?25la 1/2\r\x1b[2Ka 2/2\nb 0/1\r\x1b[2K\x1b[1A\x1b[2Ka 2/2 done\nb 1/1\n\x1b[?25h"
    assert final_frame(raw) == "a 2/2 done\nb 1/1\n"


def capture(out: Path, num_examples: int = 5000) -> None:
    """Run every stage of a demo project under a pseudo-terminal; write the final frames to `out`.

    `python -m tests.test_progress docs/progress.txt` (the README's capture).
    """
    import tempfile

    import yaml

    from tests.conftest import small_params_data

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "params.yaml").write_text(yaml.safe_dump(small_params_data(num_examples)))
        for args in (["sample"], ["ingest"], ["preprocess"], ["serialize"], ["validate"]):
            raw = run_cli_on_terminal(args, root)
            if args == ["sample"]:  # the bar while it runs, then when done
                middle = final_frame(raw[: raw.rfind(b"\r", 0, len(raw) // 2)])
                frames.append(f"$ dataops sample   # while it runs\n{middle}")
            frames.append(f"$ dataops {' '.join(args)}\n" + final_frame(raw))
    out.write_text("".join(frames), encoding="utf-8")
    render_png(out.read_text(encoding="utf-8"), out.with_suffix(".png"))


def render_png(text: str, path: Path) -> None:
    """The text as a terminal would show it (monospace, light on dark), as a PNG."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", 14)
    lines = text.rstrip("\n").split("\n")
    _, top, _, bottom = font.getbbox("M")
    cw, lh = font.getlength("M"), int((bottom - top) * 1.6) + 2
    img = Image.new(
        "RGB", (int(cw * max(map(len, lines))) + 24, lh * len(lines) + 24), (30, 30, 36)
    )
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        line = re.sub("[\u2800-\u28ff]", "*", line)  # the spinner: no braille in the font
        colour = (130, 200, 255) if line.startswith("$ ") else (225, 225, 225)
        draw.text((12, 12 + i * lh), line, font=font, fill=colour)
    img.save(path, optimize=True)


def run_cli_on_terminal(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, *, stdout_too: bool = True
) -> bytes:
    """`dataops ARGS` with stderr (and stdout) on a 100-column pseudo-terminal; returns what it drew."""
    import fcntl
    import pty
    import struct
    import termios

    full_env = {k: v for k, v in os.environ.items() if k != "DATAOPS_PROGRESS"}
    full_env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {}))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [str(VENV_BIN / "dataops"), *args],
        stdout=slave if stdout_too else subprocess.DEVNULL,
        stderr=slave,
        env=full_env,
        cwd=cwd,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait() == 0, b"".join(chunks).decode("utf-8", "replace")
    return b"".join(chunks)


if __name__ == "__main__":
    import sys

    capture(Path(sys.argv[1]))
