"""Helpers of the fault suite (tests/faults): a tiny project on disk, the CLI as a process, tree digests."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

from tests.support.project import VENV_BIN, small_params_data, tool_env

STAGES = ("sample", "ingest", "preprocess", "serialize", "validate")
OUTPUTS = {
    "sample": "data/sample",
    "ingest": "data/snapshot",
    "preprocess": "data/preprocessed",
    "serialize": "data/tfrecords",
    "validate": "reports/validation.json",
}


def write_params(root: Path, name: str = "params.yaml", **overrides) -> Path:
    path = root / name
    path.write_text(yaml.safe_dump(small_params_data(240, **overrides), sort_keys=False))
    return path


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "dataops"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tool_env(),
    )


def error_lines(stderr: str) -> list[str]:
    """The lines the CLI wrote, without TensorFlow's start-up banner (not ours to print)."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and "absl::InitializeLog" not in line and "oneDNN" not in line
    ]


def tree_digest(path: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under `path` (or of `path` itself)."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def leftovers(root: Path) -> list[str]:
    """Every `*.incomplete-*` / `*.old-*` thing under `root/data` and `root/reports`, except the
    permanent (empty) lock files."""
    found = []
    for top in ("data", "reports"):
        d = root / top
        if not d.exists():
            continue
        for p in d.rglob("*"):
            if p.name.endswith(".incomplete-lock"):
                continue
            if ".incomplete-" in p.name or ".old-" in p.name:
                found.append(str(p.relative_to(root)))
    return sorted(found)


def handlers_installed(pid: int) -> bool:
    """True once the process catches SIGTERM (the CLI has installed its handlers)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << 14))
    return False
