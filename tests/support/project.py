"""The checkout under test, the environment tools run in, the CLI as a process, params builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"  # the pinned tiny dataset (tests/test_golden.py rewrites it)
VENV_BIN = Path(sys.executable).parent


def tool_env(**extra: str) -> dict[str, str]:
    """The process environment with the venv's bin first on PATH (dataops, dvc, airflow), quiet
    TensorFlow and no DVC analytics; `extra` added last."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path | None = None, check: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `dataops ARGS` as a user would; returns the completed process (text mode)."""
    return subprocess.run(
        [str(VENV_BIN / "dataops"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        env=tool_env(**(env or {})),
    )


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def sh(*args: str, cwd: Path) -> str:
    """Run a command with the tool environment; AssertionError with its output when it fails."""
    r = subprocess.run(list(args), cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def repo_params(**overrides) -> dict:
    """The committed params.yaml as a dict, with top-level sections updated from `overrides`."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return data


def small_params_data(num_examples: int = 240, **overrides) -> dict:
    """params.yaml for a few hundred sample rows: expectations relaxed to what such a sample meets."""
    data = repo_params(sample={"num_examples": num_examples}, **overrides)
    data["validate"]["min_examples"] = {"train": 10, "validation": 1, "test": 1}
    data["validate"]["class_balance"] = {
        "feature": "label",
        "min_fraction": 0.01,
        "max_fraction": 0.7,
    }
    return data


def small_params(num_examples: int = 240, **overrides):
    from dataops.config import parse_params

    return parse_params(small_params_data(num_examples, **overrides))


def make_project(dest: Path, num_examples: int | None = 150) -> Path:
    """A git repository holding the committed project files (as a fresh clone would)."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if num_examples is not None:
        params = small_params_data(num_examples)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=dest)
    return dest
