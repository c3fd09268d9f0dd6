"""Publish to a team's git remote (a bare repository) with a failure injected after each step:
the transaction completes on retry or rolls back, and nothing is lost. Real git and DVC."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from dataops.release.publish import publish
from dataops.release.remote import PublishConflict, PublishInterrupted, RemoteError
from tests.support.project import VENV_BIN, git, tool_env
from tests.support.records import write_version


def quiet(_: str) -> None:
    pass


def _hook(repo_git_dir: Path, name: str, body: str) -> Path:
    hook = repo_git_dir / "hooks" / name
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)
    return hook


def _clone(src: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True, capture_output=True)
    git(dest, "config", "user.name", "other")
    git(dest, "config", "user.email", "other@example.com")
    return dest


@pytest.fixture
def team(tmp_path) -> tuple[Path, Path]:
    """(workspace, bare remote): the workspace's `origin` is the bare repository, `main` pushed."""
    bare = tmp_path / "team.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    git(ws, "config", "user.name", "t")
    git(ws, "config", "user.email", "t@example.com")
    (ws / ".gitignore").write_text("/data/\n")
    (ws / "code.py").write_text("print('v1')\n")
    (ws / "README.md").write_text("team data\n")
    git(ws, "add", ".")
    git(ws, "commit", "-q", "-m", "init")
    git(ws, "remote", "add", "origin", str(bare))
    git(ws, "push", "-q", "origin", "main")
    return ws, bare


def _lock_with_dep(ws: Path) -> None:
    """A dvc.lock whose stage depends on code.py (the rebase must refuse when the remote changed it)."""
    lock = {"schema": "2.0", "stages": {"build": {"cmd": "x", "deps": [{"path": "code.py"}]}}}
    text = yaml.safe_dump(lock) + f"# {(ws / 'params.yaml').read_text()!r}\n"
    (ws / "dvc.lock").write_text(text)


def _remote_refs(bare: Path) -> dict[str, str]:
    out = git(bare, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(ln.split(" ") for ln in out.splitlines())


def _published_files(ws: Path) -> dict[str, bytes]:
    return {
        f: (ws / f).read_bytes() for f in ("params.yaml", "dvc.lock", "reports/validation.json")
    }


def test_publish_pushes_commit_and_tag_and_the_event_names_the_remote(team):
    ws, bare = team
    write_version(ws, 100)
    r = publish(ws, log=quiet, push=False, remote="origin")
    assert r.published and r.tag == "toy-v1.0" and "pushed to git remote" in r.message
    refs = _remote_refs(bare)
    assert refs["refs/heads/main"] == r.commit == git(ws, "rev-parse", "HEAD")
    assert refs["refs/tags/toy-v1.0"] == git(ws, "rev-parse", "refs/tags/toy-v1.0")
    extra = r.asset_extra()
    assert extra["git_remote"] == str(bare) and extra["git_branch"] == "main"
    assert extra["load"] == f"dataops.load('toy-v1.0', 'train', repo={str(bare)!r})"
    again = publish(ws, log=quiet, push=False, remote="origin")
    assert not again.published and "already published as toy-v1.0" in again.message
    assert _remote_refs(bare) == refs


def test_push_refused_by_the_remote_rolls_back_and_a_retry_completes(team):
    ws, bare = team
    init = git(ws, "rev-parse", "HEAD")
    before = _remote_refs(bare)
    hook = _hook(bare, "pre-receive", "echo 'policy: the branch is frozen' >&2\nexit 1\n")
    write_version(ws, 100)
    files = _published_files(ws)
    lines: list[str] = []
    with pytest.raises(
        RemoteError, match=r"git push of toy-v1.0 to .* refused; commit and tag rolled back"
    ) as err:
        publish(ws, log=lines.append, push=False, remote="origin")
    assert "policy: the branch is frozen" in str(err.value)
    assert git(ws, "rev-parse", "HEAD") == init and git(ws, "tag") == ""
    assert _published_files(ws) == files, "the run's files are kept for the retry"
    assert _remote_refs(bare) == before
    assert any(ln.startswith("rolled back: deleted local tag toy-v1.0") for ln in lines)

    hook.unlink()
    r = publish(ws, log=quiet, push=False, remote="origin")
    assert r.published and r.tag == "toy-v1.0"
    assert _remote_refs(bare)["refs/heads/main"] == r.commit
    assert git(ws, "rev-list", "--count", "HEAD") == "2"  # init + one publish commit


def test_tag_exists_after_the_commit_rolls_the_commit_back_and_a_retry_takes_a_free_name(team):
    ws, bare = team
    init = git(ws, "rev-parse", "HEAD")
    # someone takes the tag name between our commit and our tag
    _hook(ws / ".git", "post-commit", "git tag toy-v1.0 HEAD~1 2>/dev/null\nexit 0\n")
    write_version(ws, 100)
    with pytest.raises(
        PublishInterrupted,
        match=r"git tag toy-v1.0 failed, nothing published \(commit rolled back\).*already exists",
    ):
        publish(ws, log=quiet, push=False, remote="origin")
    assert git(ws, "rev-parse", "HEAD") == init
    assert "refs/tags/toy-v1.0" not in _remote_refs(bare)
    (ws / ".git" / "hooks" / "post-commit").unlink()

    r = publish(ws, log=quiet, push=False, remote="origin")
    # the foreign tag carries no schema, so the next free name is a new major
    assert r.published and r.tag == "toy-v2.0"
    assert git(ws, "rev-parse", "toy-v1.0") == init, "the other tag is left alone"
    assert _remote_refs(bare)["refs/heads/main"] == r.commit


def test_remote_unreachable_publishes_nothing_and_a_retry_completes(team):
    ws, bare = team
    init = git(ws, "rev-parse", "HEAD")
    write_version(ws, 100)
    bogus = str(ws.parent / "no-such-remote.git")
    with pytest.raises(
        RemoteError, match=r"git remote '.*no-such-remote.git' unreachable, nothing published"
    ):
        publish(ws, log=quiet, push=False, remote=bogus, branch="main")
    assert git(ws, "rev-parse", "HEAD") == init and git(ws, "tag") == ""

    # reachable for the fetch, unreachable for the push: fails after commit and tag, rolled back
    git(ws, "remote", "set-url", "--push", "origin", bogus)
    with pytest.raises(RemoteError, match=r"unreachable; commit and tag rolled back"):
        publish(ws, log=quiet, push=False, remote="origin")
    assert git(ws, "rev-parse", "HEAD") == init and git(ws, "tag") == ""
    git(ws, "remote", "set-url", "--push", "origin", str(bare))
    r = publish(ws, log=quiet, push=False, remote="origin")
    assert r.published and _remote_refs(bare)["refs/tags/toy-v1.0"]


def test_an_unpushed_tag_left_by_an_interrupted_publish_is_pushed_on_retry(team):
    ws, bare = team
    write_version(ws, 100)
    local = publish(ws, log=quiet, push=False, remote="")  # as if the process died before the push
    assert local.published and "refs/tags/toy-v1.0" not in _remote_refs(bare)
    r = publish(ws, log=quiet, push=False, remote="origin")
    assert r.published and r.tag == "toy-v1.0" and r.commit == local.commit
    assert "an earlier attempt's tag, now pushed" in r.message
    assert _remote_refs(bare)["refs/tags/toy-v1.0"] == git(ws, "rev-parse", "refs/tags/toy-v1.0")
    assert _remote_refs(bare)["refs/heads/main"] == local.commit


def test_an_untagged_publish_commit_left_by_an_interrupted_publish_is_tagged_on_retry(team):
    ws, bare = team
    write_version(ws, 100)
    git(ws, "add", "params.yaml", "dvc.lock", "reports/validation.json")
    git(ws, "commit", "-q", "-m", "Publish toy v1.0: train=100 examples")  # died before the tag
    head = git(ws, "rev-parse", "HEAD")
    r = publish(ws, log=quiet, push=False, remote="origin")
    assert r.published and r.commit == head and git(ws, "rev-parse", "HEAD") == head
    assert _remote_refs(bare)["refs/heads/main"] == head


def test_someone_published_meanwhile_the_publish_is_rebased_and_nothing_is_lost(team, tmp_path):
    ws, bare = team
    other = _clone(bare, tmp_path / "other")
    (other / "README.md").write_text("team data, documented\n")
    git(other, "commit", "-qam", "docs")
    write_version(other, 90)
    theirs = publish(other, log=quiet, push=False, remote="origin")
    assert theirs.tag == "toy-v1.0"

    write_version(ws, 100)
    ours_files = _published_files(ws)
    lines: list[str] = []
    r = publish(ws, log=lines.append, push=False, remote="origin")
    assert r.published and r.tag == "toy-v1.1"
    assert any("workspace rebased onto" in ln for ln in lines), lines
    refs = _remote_refs(bare)
    assert refs["refs/heads/main"] == r.commit
    assert git(ws, "rev-parse", f"{r.commit}^") == theirs.commit, "our commit is on top of theirs"
    assert refs["refs/tags/toy-v1.0"] == git(other, "rev-parse", "refs/tags/toy-v1.0")
    assert (ws / "README.md").read_text() == "team data, documented\n"  # their work is here
    assert _published_files(ws) == ours_files  # and ours is what was published
    assert json.loads(git(ws, "show", "toy-v1.1:reports/validation.json"))["num_examples"] == {
        "train": 100
    }


def test_remote_pushed_the_same_data_meanwhile_no_second_version(team, tmp_path):
    ws, bare = team
    other = _clone(bare, tmp_path / "other")
    write_version(other, 100)
    publish(other, log=quiet, push=False, remote="origin")
    write_version(ws, 100)
    r = publish(ws, log=quiet, push=False, remote="origin")
    assert not r.published and r.tag == "toy-v1.0" and "already published" in r.message
    assert [k for k in _remote_refs(bare) if k.startswith("refs/tags/")] == ["refs/tags/toy-v1.0"]


def test_remote_changed_the_code_the_version_was_built_from_fails_with_a_clean_workspace(
    team, tmp_path
):
    ws, bare = team
    other = _clone(bare, tmp_path / "other")
    (other / "code.py").write_text("print('v2')\n")
    git(other, "commit", "-qam", "new code")
    git(other, "push", "-q", "origin", "main")

    write_version(ws, 100)
    _lock_with_dep(ws)
    with pytest.raises(
        PublishConflict,
        match=r"changed code.py, which this version was built from: nothing published; the workspace is now at",
    ):
        publish(ws, log=quiet, push=False, remote="origin")
    assert git(ws, "rev-parse", "HEAD") == git(other, "rev-parse", "HEAD")
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(ws, "tag") == "" and not any(k.startswith("refs/tags/") for k in _remote_refs(bare))


def test_dvc_push_failure_publishes_nothing_and_a_retry_completes(team, tmp_path):
    ws, bare = team
    dvc = [str(VENV_BIN / "dvc")]
    subprocess.run([*dvc, "init", "-q"], cwd=ws, check=True, env=tool_env())
    (ws / "blob.bin").write_bytes(b"\x00data\x01" * 100)
    subprocess.run([*dvc, "add", "-q", "blob.bin"], cwd=ws, check=True, env=tool_env())
    subprocess.run(
        [*dvc, "remote", "add", "-d", "store", "/dev/null/store"],
        cwd=ws,
        check=True,
        env=tool_env(),
    )
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "track blob")
    git(ws, "push", "-q", "origin", "main")
    head = git(ws, "rev-parse", "HEAD")
    write_version(ws, 100)
    with pytest.raises(
        RemoteError, match=r"DVC remote /dev/null/store: push failed, nothing published"
    ):
        publish(ws, log=quiet, remote="origin")
    assert git(ws, "rev-parse", "HEAD") == head and git(ws, "tag") == ""

    store = tmp_path / "store"
    subprocess.run(
        [*dvc, "remote", "modify", "--local", "store", "url", str(store)],
        cwd=ws,
        check=True,
        env=tool_env(),
    )
    r = publish(ws, log=quiet, remote="origin")
    assert r.published and r.dvc_remote == str(store)
    assert r.asset_extra()["dvc_remote"] == str(store)
    assert any(p.is_file() for p in (store / "files" / "md5").rglob("*"))
