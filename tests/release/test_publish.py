"""Stage runner (real DVC: failures, the repository lock) and publishing (real git: commits, tags, the version scheme)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from dataops.errors import ConfigError, DatasetError
from dataops.release.dvc import RepoLocked, StageFailed, is_retryable, run_stage
from dataops.release.git import strip_credentials
from dataops.release.publish import publish
from dataops.release.tags import check_tag_name, parse_trailers, published_versions
from dataops.release.versions import list_versions, version_detail
from dataops.release.workspace import committed_params, restore_workspace
from tests.support.project import VENV_BIN, git, tool_env
from tests.support.records import write_version


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


def test_stage_exit_codes_decide_whether_a_retry_can_help(tmp_path):
    stages = {
        f"exit{n}": {"cmd": f'python -c "import sys; sys.exit({n})"', "outs": [f"o{n}"]}
        for n in (1, 2, 3)
    }
    repo = _dvc_repo(tmp_path / "r", yaml.safe_dump({"stages": stages}))
    got = {}
    for n in (1, 2, 3):
        with pytest.raises(StageFailed) as err:
            run_stage(f"exit{n}", repo, log=lambda _: None)
        got[n] = (err.value.command_exit, is_retryable(err.value))
    # 2 = config error, 1 = bad data / failed validation: the same again on retry
    assert got == {1: (1, False), 2: (2, False), 3: (3, True)}
    assert is_retryable(RepoLocked("x")) and not is_retryable(ConfigError("x"))
    assert not is_retryable(DatasetError("x")) and is_retryable(OSError("disk"))


def test_stage_waits_for_the_dvc_lock_instead_of_failing(tmp_path):
    import zc.lockfile

    repo = _dvc_repo(
        tmp_path / "r",
        "stages:\n  hello:\n    cmd: python -c \"open('out.txt', 'w').write('hi')\"\n    outs: [out.txt]\n",
    )
    (repo / ".dvc" / "tmp").mkdir(exist_ok=True)
    lock = zc.lockfile.LockFile(str(repo / ".dvc" / "tmp" / "lock"))  # what another `dvc` holds
    lines: list[str] = []

    def log(line: str) -> None:  # the other process lets go once we said we are waiting
        lines.append(line)
        if "lock is held by another process; waiting" in line:
            lock.close()

    try:
        run_stage("hello", repo, log=log, lock_wait_s=120, poll_s=0.1)
    finally:
        lock.close()
    assert sum("lock is held by another process; waiting" in ln for ln in lines) == 1, lines
    assert (repo / "out.txt").read_text() == "hi"


def test_stage_gives_up_on_a_lock_held_too_long(tmp_path):
    import zc.lockfile

    repo = _dvc_repo(tmp_path / "r", "stages:\n  s:\n    cmd: echo\n")
    (repo / ".dvc" / "tmp").mkdir(exist_ok=True)
    lock = zc.lockfile.LockFile(str(repo / ".dvc" / "tmp" / "lock"))
    try:
        with pytest.raises(RepoLocked, match=r"DVC repository lock still held after 0s"):
            run_stage("s", repo, log=lambda _: None, lock_wait_s=0)
    finally:
        lock.close()


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


def quiet(_: str) -> None:
    pass


def test_publish_commits_tags_and_bumps_versions(ws):
    write_version(ws, 100)
    (ws / "unrelated.txt").write_text("not published")
    lines: list[str] = []
    r1 = publish(ws, log=lines.append, push=False)
    assert r1.published and r1.tag == "toy-v1.0"
    assert (
        "no git remote configured ($DATAOPS_GIT_REMOTE)" in lines[0] and "local only" in r1.message
    )
    assert (
        git(ws, "log", "-1", "--format=%s")
        == "Publish toy v1.0: train=100 examples, fingerprint " + f"{100:064x}"[:12]
    )
    assert sorted(git(ws, "show", "--name-only", "--format=", "HEAD").split()) == [
        "dvc.lock",
        "params.yaml",
        "reports/validation.json",
    ]
    # the files line names every file whole (it used to lose the first character)
    assert "files: params.yaml, dvc.lock, reports/validation.json" in git(
        ws, "log", "-1", "--format=%b"
    )
    assert git(ws, "rev-list", "-n1", "toy-v1.0") == r1.commit
    message = git(ws, "tag", "--list", "--format=%(contents)", "toy-v1.0")
    assert message.endswith(
        f"\n\nDataops-Dataset: toy\nDataops-Version: v1.0\nDataops-Fingerprint: {100:064x}"
    ), message
    assert parse_trailers(message) == {
        "Dataops-Dataset": "toy",
        "Dataops-Version": "v1.0",
        "Dataops-Fingerprint": f"{100:064x}",
    }
    # git itself reads them as trailers
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True
    ).stdout
    assert parsed.splitlines() == [
        "Dataops-Dataset: toy",
        "Dataops-Version: v1.0",
        f"Dataops-Fingerprint: {100:064x}",
    ]
    extra = r1.asset_extra()
    assert extra == {
        "dataset": "toy",
        "version": "v1.0",
        "commit": r1.commit,
        "tag": "toy-v1.0",
        "fingerprint": f"{100:064x}",
        "num_examples": {"train": 100},
        "git_remote": None,
        "git_branch": None,
        "workspace": str(ws),
        "dvc_remote": None,
        "load": f"dataops.load('toy-v1.0', 'train', repo={str(ws)!r})",
    }

    again = publish(ws, log=quiet, push=False)
    assert not again.published and again.tag == "toy-v1.0"
    assert again.message.startswith("nothing to publish: fingerprint")
    assert "already published as toy-v1.0" in again.message and "no commit, no tag" in again.message
    assert git(ws, "rev-parse", "HEAD") == r1.commit

    write_version(ws, 120)  # same schema: next build
    assert publish(ws, log=quiet, push=False).tag == "toy-v1.1"
    write_version(ws, 130, features=["a", "b"])  # schema changed: next major
    r4 = publish(ws, log=quiet, push=False)
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


def test_an_old_fingerprint_is_not_published_twice(ws):
    """ "Something to publish?" is asked of the published tags, not of HEAD."""
    write_version(ws, 100)
    v1 = publish(ws, log=quiet, push=False)
    write_version(ws, 120)
    publish(ws, log=quiet, push=False)
    write_version(ws, 100)  # back to the data of v1.0: differs from HEAD, but is published
    again = publish(ws, log=quiet, push=False)
    assert not again.published and again.tag == "toy-v1.0" and again.commit == v1.commit
    assert [v.tag for v in published_versions(ws, "toy")] == ["toy-v1.0", "toy-v1.1"]
    assert len(git(ws, "rev-list", "HEAD").split()) == 3  # init + two publishes, nothing more


def test_an_untagged_head_is_tagged_not_committed_again(ws):
    """A fresh clone's committed data (or a commit an interrupted publish left) is tagged as it is."""
    write_version(ws, 100)
    git(ws, "add", "params.yaml", "dvc.lock", "reports/validation.json")
    git(ws, "commit", "-q", "-m", "the data as a developer committed it")
    head = git(ws, "rev-parse", "HEAD")
    r = publish(ws, log=quiet, push=False)
    assert r.published and r.tag == "toy-v1.0" and r.commit == head
    assert git(ws, "rev-parse", "HEAD") == head, "no empty commit"
    body = git(ws, "tag", "--list", "--format=%(contents)", "toy-v1.0")
    assert f"files: none changed (tags the existing commit {head})" in body


def test_versions_tagged_by_hand_count_by_their_committed_report(ws):
    write_version(ws, 100)
    git(ws, "add", "params.yaml", "dvc.lock", "reports/validation.json")
    git(ws, "commit", "-q", "-m", "by hand")
    git(ws, "tag", "toy-v1.0")  # lightweight, no trailers: its report says the fingerprint
    r = publish(ws, log=quiet, push=False)
    assert not r.published and r.tag == "toy-v1.0"


@pytest.mark.parametrize("name", ["a..b", "a b", ".hidden", "a/.b", "a~1", "a:b", "a@{1", ""])
def test_a_dataset_name_git_cannot_tag_is_refused_before_any_work(ws, name):
    with pytest.raises(ConfigError, match=r"key 'dataset.name': .* cannot name a git tag"):
        check_tag_name(ws, name)
    write_version(ws, 100)
    meta = json.loads((ws / "data/tfrecords/metadata.json").read_text())
    meta["name"] = name
    (ws / "data/tfrecords/metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="cannot name a git tag"):
        publish(ws, log=quiet, push=False)
    assert git(ws, "log", "--format=%s") == "init" and git(ws, "tag") == ""


def test_restore_workspace_puts_the_published_files_back(ws):
    write_version(ws, 100)
    publish(ws, log=quiet, push=False)
    committed = {f: (ws / f).read_bytes() for f in ("params.yaml", "dvc.lock")}
    (ws / "params.yaml").write_text("sample:\n  num_examples: 3\n")  # what a failed run left
    (ws / "dvc.lock").write_text("half written")
    assert committed_params(ws) == {"sample": {"num_examples": 100}}  # the form's defaults
    lines: list[str] = []
    assert restore_workspace(ws, log=lines.append) == ["params.yaml", "dvc.lock"]
    assert {f: (ws / f).read_bytes() for f in committed} == committed
    assert lines[0].startswith("restored params.yaml as committed at HEAD")
    assert restore_workspace(ws, log=lines.append) == []
    assert lines[-1] == "workspace already as committed at HEAD: nothing to restore"


def test_credentials_are_stripped_from_remote_urls():
    assert strip_credentials("https://bot:s3cr3t@git.example.com/team/data.git") == (
        "https://git.example.com/team/data.git"
    )
    assert strip_credentials("s3://bucket/path") == "s3://bucket/path"
    assert strip_credentials("git@github.com:team/data.git") == "git@github.com:team/data.git"


def test_publish_refuses_a_failed_validation(ws):
    write_version(ws, 3, ok=False)
    with pytest.raises(
        DatasetError, match=r"validation failed, not publishing: split 'train': 3 examples < 10"
    ):
        publish(ws, log=quiet, push=False)
    assert git(ws, "tag") == ""
