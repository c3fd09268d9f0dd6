"""A version leaves the machine: the real pipeline on 120 rows, a bare git repository as the team's
remote and a local directory as the DVC remote. A fresh clone's first run publishes v1.0 by tagging
the committed data; elsewhere, `git checkout <tag> && dvc pull && dataops verify` gives its bytes."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from dataops.fsutil import sha256_file
from dataops.release.publish import publish
from dataops.release.tags import published_versions
from tests.support.airflow import make_clone
from tests.support.project import REPO, VENV_BIN, git, tool_env

pytestmark = pytest.mark.slow


def sh(cwd: Path, *argv: str) -> str:
    proc = subprocess.run(
        argv, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{argv}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, str(VENV_BIN / "dvc"), *args)


def shards(d: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(d.iterdir()) if p.is_file()}


def test_fresh_clone_publishes_v1_and_another_machine_gets_the_exact_bytes(tmp_path, monkeypatch):
    # a developer commits the pipeline's data (dvc.lock) and pushes it; nobody published yet
    dev = make_clone(tmp_path / "dev", num_examples=120)
    dvc(dev, "repro", "--quiet")
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "-m", "data for 120 rows")
    dvc(dev, "push", "--quiet")
    team = tmp_path / "team.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(team))
    git(dev, "push", "-q", str(team), "main")
    committed = git(dev, "rev-parse", "HEAD")

    # the worker: a fresh clone; its first run reproduces the committed data, nothing changed vs HEAD
    worker = tmp_path / "worker"
    git(tmp_path, "clone", "-q", str(team), str(worker))
    dvc(worker, "repro", "--quiet")
    assert git(worker, "status", "--porcelain", "--", "params.yaml", "dvc.lock", "reports") == ""
    lines: list[str] = []
    r = publish(worker, log=lines.append, remote="origin")
    assert r.published and r.tag == "sample-v1.0", lines
    assert r.commit == committed and git(worker, "rev-parse", "HEAD") == committed, (
        "no empty commit"
    )
    assert git(team, "rev-parse", "refs/tags/sample-v1.0^{commit}") == committed
    extra = r.asset_extra()
    assert extra["git_remote"] == str(team) and extra["dvc_remote"] == str(tmp_path / "remote")
    assert extra["load"] == f"dataops.load('sample-v1.0', 'train', repo={str(team)!r})"
    assert sum(extra["num_examples"].values()) == 120
    [pv] = published_versions(team, "sample")
    assert pv.fingerprint == r.fingerprint  # read from the tag's trailer in the team's repository

    # the second run finds the fingerprint published: nothing new anywhere
    again = publish(worker, log=lines.append, remote="origin")
    assert not again.published and "already published as sample-v1.0" in again.message

    # someone else, elsewhere: only the git remote's URL and the tag
    consumer = tmp_path / "elsewhere" / "consumer"
    consumer.parent.mkdir()
    git(consumer.parent, "clone", "-q", extra["git_remote"], str(consumer))
    git(consumer, "-c", "advice.detachedHead=false", "checkout", "-q", extra["tag"])
    dvc(consumer, "pull", "--quiet")
    sh(consumer, str(VENV_BIN / "dataops"), "verify", "data/tfrecords")
    got = shards(consumer / "data" / "tfrecords")
    assert got == shards(worker / "data" / "tfrecords")
    assert any(name.startswith("sample-train.tfrecord") for name in got), sorted(got)

    # the downstream DAG's task body, fed the event's extra only (the workspaces are gone)
    import shutil

    monkeypatch.setenv("DATAOPS_CACHE_DIR", str(tmp_path / "consumer-cache"))
    shutil.rmtree(worker)
    shutil.rmtree(dev)
    spec = importlib.util.spec_from_file_location(
        "downstream", REPO / "examples" / "downstream_dag.py"
    )
    downstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(downstream)
    got = downstream.load_from_event(dict(extra), "train")
    assert got["examples"] == extra["num_examples"]["train"] and got["tag"] == "sample-v1.0"
