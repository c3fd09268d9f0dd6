"""The CLI on a pseudo-terminal and what a terminal shows of it; regenerates the README's capture.

`python -m tests.support.progress_capture docs/progress.txt` writes docs/progress.txt and
docs/progress.png.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.project import VENV_BIN, small_params_data, tool_env


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


def capture(out: Path, num_examples: int = 5000) -> None:
    """Run every stage of a demo project under a pseudo-terminal; write the final frames to `out`.

    `python -m tests.support.progress_capture docs/progress.txt` (the README's capture).
    """
    import tempfile

    import yaml

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

    full_env = tool_env()
    full_env.pop("DATAOPS_PROGRESS", None)
    full_env.update(env or {})
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
