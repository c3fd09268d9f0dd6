"""Helpers of the Airflow tests: a temporary clone of the project, `dag.test()` in a subprocess, git queries."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from tests.conftest import small_params_data

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def tool_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.update(extra)
    return env


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_clone(dest: Path, num_examples: int = 120) -> Path:
    """A git repo at `dest` holding the project's tracked files, small params, and its own DVC remote.

    Like `git clone` of the checkout (the tracked files as they are in the working tree), with
    `params.yaml` set to `num_examples` sample rows and the DVC remote `local` at `dest/../remote`.
    """
    dest.mkdir(parents=True)
    for rel in git(REPO, "ls-files", "-z").split("\0"):
        src = REPO / rel
        if not rel or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for d in ("dags", "plugins", "dataops"):  # the code under test, even before it is committed
        shutil.copytree(
            REPO / d, dest / d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    (dest / "params.yaml").write_text(
        yaml.safe_dump(small_params_data(num_examples), sort_keys=False)
    )
    remote = dest.parent / "remote"
    remote.mkdir(exist_ok=True)
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config").write_text(
        f"[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = {remote}\n"
    )
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "test")
    git(dest, "config", "user.email", "test@example.com")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "clone")
    return dest


def airflow_env(home: Path, workspace: Path, **extra: str) -> dict[str, str]:
    return tool_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(workspace / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(workspace / "plugins"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        DATAOPS_PROJECT_DIR=str(workspace),
        **{"DATAOPS_SCHEDULE": "none", **extra},
    )


def airflow_db(home: Path, workspace: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        env=airflow_env(home, workspace),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


_DAGTEST = textwrap.dedent(
    """
    import importlib.util, json, sys
    from sqlalchemy import select
    spec = importlib.util.spec_from_file_location("dataset_pipeline", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    conf = json.loads(sys.argv[2])
    dr = mod.DAG.test(run_conf=conf or None)
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    with create_session() as s:
        events = [e.extra for e in s.scalars(select(AssetEvent).order_by(AssetEvent.id))]
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    print("RESULT " + json.dumps({"state": str(dr.state), "tasks": states, "events": events}))
    """
)


def dag_test(
    home: Path, workspace: Path, conf: dict | None = None, timeout: int = 600
) -> tuple[dict, str]:
    """Run `DAG.test()` of the workspace's DAG file in a subprocess; returns (result, full output)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _DAGTEST,
            str(workspace / "dags" / "dataset_pipeline.py"),
            json.dumps(conf or {}),
        ],
        env=airflow_env(home, workspace),
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, out[-6000:]
    return json.loads(lines[-1][len("RESULT ") :]), out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
