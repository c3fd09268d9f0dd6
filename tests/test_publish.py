"""Stage runner (real DVC: failures, the repository lock) and publishing (real git: commits, tags, the version scheme)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from airflow_helpers import VENV_BIN, git, tool_env

from dataops.airflow_tasks import StageFailed, run_stage
from dataops.errors import DatasetError
from dataops.publish import publish
from dataops.versions import list_versions, version_detail


def _dvc_repo(root: Path, stages: str) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    subprocess.run([str(VENV_BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=tool_env())
    (root / "dvc.yaml").write_text(stages)
    return root


def test_stage_failure_carries_dvcs_message(tmp_path):
    stage = {"cmd": "python -c \"import sys; sys.exit('boom: row 7 is bad')\"", "outs": ["out.txt"]}
    repo = _dvc_repo(tmp_path / "r", yaml.safe_dump({"stages": {"bad": stage}}))
    lines: list[str] = []
    with pytest.raises(StageFailed) as err:
        run_stage("bad", repo, log=lines.append)
    msg = str(err.value)
    assert "`dvc repro --single-item bad` failed with exit code" in msg
    assert "boom: row 7 is bad" in msg and "ERROR: failed to reproduce 'bad'" in msg
    assert "boom: row 7 is bad" in lines  # streamed to the log as it happened


def test_stage_waits_for_the_dvc_lock_instead_of_failing(tmp_path):
    import zc.lockfile

    repo = _dvc_repo(
        tmp_path / "r",
        "stages:\n  hello:\n    cmd: python -c \"open('out.txt', 'w').write('hi')\"\n    outs: [out.txt]\n",
    )
    (repo / ".dvc" / "tmp").mkdir(exist_ok=True)
    lock = zc.lockfile.LockFile(
        str(repo / ".dvc" / "tmp" / "lock")
    )  # what another `dvc` process holds
    released = threading.Timer(7.0, lock.close)
    released.start()
    lines: list[str] = []
    t = time.monotonic()
    try:
        run_stage("hello", repo, log=lines.append, lock_wait_s=60)
    finally:
        released.cancel()
        lock.close()
    assert time.monotonic() - t >= 6.5
    assert any("lock is held by another process; waiting" in ln for ln in lines), lines
    assert (repo / "out.txt").read_text() == "hi"


def _meta(features: list[str], n: int) -> dict:
    return {
        "name": "toy",
        "fingerprint": f"{n:064x}",
        "features": [
            {"name": f, "kind": "tensor", "dtype": "int64", "shape": [], "encoding": "none"}
            for f in features
        ],
        "splits": [{"name": "train", "num_examples": n, "num_bytes": 10 * n, "shards": []}],
    }


def _write_version(ws: Path, n: int, features: list[str] = ["a"], ok: bool = True) -> None:  # noqa: B006
    meta = _meta(features, n)
    (ws / "data" / "tfrecords").mkdir(parents=True, exist_ok=True)
    (ws / "data" / "tfrecords" / "metadata.json").write_text(json.dumps(meta))
    (ws / "reports").mkdir(exist_ok=True)
    report = {
        "ok": ok,
        "fingerprint": meta["fingerprint"],
        "num_examples": {"train": n},
        "num_bytes": {"train": 10 * n},
        "violations": [] if ok else ["split 'train': 3 examples < 10"],
    }
    (ws / "reports" / "validation.json").write_text(json.dumps(report))
    (ws / "params.yaml").write_text(f"sample:\n  num_examples: {n}\n")
    (ws / "dvc.lock").write_text(f"schema: '2.0'\nstages: {{}}\n# {n}\n")


@pytest.fixture
def ws(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    git(ws, "config", "user.name", "t")
    git(ws, "config", "user.email", "t@example.com")
    (ws / ".gitignore").write_text("/data/\n")
    git(ws, "add", ".gitignore")
    git(ws, "commit", "-q", "-m", "init")
    return ws


def test_publish_commits_tags_and_bumps_versions(ws):
    _write_version(ws, 100)
    (ws / "unrelated.txt").write_text("not published")
    r1 = publish(ws, log=lambda _: None, push=False)
    assert r1.published and r1.tag == "toy-v1.0"
    assert (
        git(ws, "log", "-1", "--format=%s")
        == "Publish toy v1.0: train=100 examples, fingerprint " + f"{100:064x}"[:12]
    )
    assert sorted(git(ws, "show", "--name-only", "--format=", "HEAD").split()) == [
        "dvc.lock",
        "params.yaml",
        "reports/validation.json",
    ]
    assert git(ws, "rev-list", "-n1", "toy-v1.0") == r1.commit
    assert r1.asset_extra() == {
        "dataset": "toy",
        "commit": r1.commit,
        "tag": "toy-v1.0",
        "fingerprint": f"{100:064x}",
        "num_examples": {"train": 100},
    }

    again = publish(ws, log=lambda _: None, push=False)
    assert not again.published and again.tag == "toy-v1.0"
    assert again.message.startswith("nothing changed:") and "no commit, no tag" in again.message
    assert git(ws, "rev-parse", "HEAD") == r1.commit

    _write_version(ws, 120)  # same schema: next build
    assert publish(ws, log=lambda _: None, push=False).tag == "toy-v1.1"
    _write_version(ws, 130, features=["a", "b"])  # schema changed: next major
    r4 = publish(ws, log=lambda _: None, push=False)
    assert r4.tag == "toy-v2.0"
    assert "?? unrelated.txt" in git(
        ws, "status", "--porcelain"
    )  # only the published files were committed

    versions = list_versions(ws)
    assert [v.tag for v in versions] == ["toy-v2.0", "toy-v1.1", "toy-v1.0"]
    assert (
        versions[-1].num_examples == {"train": 100}
        and versions[-1].num_bytes == 1000
        and versions[-1].ok is True
    )
    detail = version_detail(ws, "toy-v1.1")
    assert detail["params"] == {"sample": {"num_examples": 120}}
    assert detail["metadata_available"] is False and "dvc fetch" in detail["metadata_note"]
    with pytest.raises(DatasetError, match="no published version 'toy-v9.9'"):
        version_detail(ws, "toy-v9.9")


def test_publish_refuses_a_failed_validation(ws):
    _write_version(ws, 3, ok=False)
    with pytest.raises(
        DatasetError, match=r"validation failed, not publishing: split 'train': 3 examples < 10"
    ):
        publish(ws, log=lambda _: None, push=False)
    assert git(ws, "tag") == ""
