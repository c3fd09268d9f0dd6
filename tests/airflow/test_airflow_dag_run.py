"""`DAG.test()` end to end on SQLite in a temporary clone: real Airflow, DVC, git and TensorFlow on 120 rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from dataops.release.versions import list_versions, version_detail
from tests.support.airflow import airflow_db, dag_test, make_clone
from tests.support.project import git

pytestmark = pytest.mark.slow
STAGE_TASKS = ["sample", "ingest", "preprocess", "serialize", "validate"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(workspace, AIRFLOW_HOME); versions are pushed to a bare repository, the team's git remote."""
    root = tmp_path_factory.mktemp("dagrun")
    clone = make_clone(root / "proj", num_examples=120)
    team = root / "team.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(team))
    airflow_db(root / "airflow-home", clone)
    saved = os.environ.get("DATAOPS_GIT_REMOTE")
    os.environ["DATAOPS_GIT_REMOTE"] = str(team)  # the dag_test subprocess inherits it
    yield clone, root / "airflow-home"
    if saved is None:
        os.environ.pop("DATAOPS_GIT_REMOTE", None)
    else:
        os.environ["DATAOPS_GIT_REMOTE"] = saved


def _team(clone: Path) -> Path:
    return clone.parent / "team.git"


def _remote_has(clone: Path, md5: str) -> bool:
    remote = clone.parent / "remote"
    return (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()


def test_runs_publish_a_version_then_nothing_then_a_new_param(project):
    clone, home = project
    first_commit = git(clone, "rev-parse", "HEAD")

    # 1. first run: every stage runs, publish commits and tags, the data is in the remote
    r1, _ = dag_test(home, clone)
    assert r1["state"] == "success", r1
    assert r1["tasks"] == {
        t: "success" for t in ["apply_params", *STAGE_TASKS, "publish", "restore_workspace"]
    }
    head = git(clone, "rev-parse", "HEAD")
    assert head != first_commit
    assert git(clone, "tag", "--points-at", "HEAD") == "sample-v1.0"
    subject = git(clone, "log", "-1", "--format=%s")
    event = r1["events"][-1]
    assert event["commit"] == head and event["tag"] == "sample-v1.0"
    # the version left the machine: commit and tag are in the team's repository
    team = _team(clone)
    assert git(team, "rev-parse", "main") == head
    assert git(team, "rev-parse", "refs/tags/sample-v1.0^{commit}") == head
    assert event["git_remote"] == str(team) and event["git_branch"] == "main"
    assert event["dvc_remote"] == str(clone.parent / "remote") and event["version"] == "v1.0"
    assert event["load"] == f"dataops.load('sample-v1.0', 'train', repo={str(team)!r})"
    assert sum(event["num_examples"].values()) == 120
    n = event["num_examples"]
    assert (
        subject
        == f"Publish sample v1.0: train={n['train']}, validation={n['validation']}, test={n['test']} examples, fingerprint {event['fingerprint'][:12]}"
    )
    # the clone's small params.yaml was committed with it, so this commit holds the new lock and report
    assert sorted(git(clone, "show", "--name-only", "--format=", "HEAD").split()) == [
        "dvc.lock",
        "reports/metrics.json",
        "reports/validation.json",
    ]
    lock = yaml.safe_load(git(clone, "show", "HEAD:dvc.lock"))
    outs = [
        o
        for s in lock["stages"].values()
        for o in s.get("outs", [])
        if o["path"].startswith("data/")
    ]
    assert {o["path"] for o in outs} >= {
        "data/sample",
        "data/snapshot",
        "data/preprocessed",
        "data/tfrecords",
    }
    assert all(_remote_has(clone, o["md5"]) for o in outs), "every data out is in the DVC remote"
    tfrecords = next(o["md5"] for o in outs if o["path"] == "data/tfrecords")
    listing = json.loads(
        (clone.parent / "remote" / "files" / "md5" / tfrecords[:2] / tfrecords[2:]).read_text()
    )
    # 3 shards, their 3 indexes, metadata.json, and TFDS's dataset_info.json, features.json and
    # the class names of the two categorical features
    assert len(listing) == 11 and all(_remote_has(clone, f["md5"]) for f in listing)
    assert {f["relpath"] for f in listing} >= {
        "metadata.json",
        "dataset_info.json",
        "features.json",
        "label.labels.txt",
        "color.labels.txt",
    }
    assert git(clone, "status", "--porcelain", "--", "params.yaml", "dvc.lock", "reports") == ""

    # the version as the Datasets page reads it (git + DVC cache, no checkout)
    detail = version_detail(clone, "sample-v1.0")
    assert detail["ok"] is True and detail["num_examples"] == n
    assert detail["metadata_available"] and [f["name"] for f in detail["features"]][:3] == [
        "id",
        "image",
        "label",
    ]
    assert {s["name"]: s["num_examples"] for s in detail["splits"]} == n
    assert detail["params"]["sample"]["num_examples"] == 120

    # 2. second run: the fingerprint is published, so no commit, no tag, no asset event
    r2, out2 = dag_test(home, clone)
    assert r2["state"] == "success", r2
    assert r2["tasks"]["publish"] == "skipped" and all(
        r2["tasks"][t] == "success" for t in STAGE_TASKS
    )
    assert "nothing to publish:" in out2 and "already published as sample-v1.0" in out2
    assert git(clone, "rev-parse", "HEAD") == head
    assert git(clone, "tag").split() == ["sample-v1.0"]
    assert len(r2["events"]) == len(r1["events"])

    # 3. a run with another param value publishes a new version whose commit holds that value
    r3, _ = dag_test(home, clone, {"sample__num_examples": 150})
    assert r3["state"] == "success", r3
    assert r3["tasks"]["publish"] == "success"
    assert git(clone, "tag", "--points-at", "HEAD") == "sample-v1.1"
    assert (
        yaml.safe_load(git(clone, "show", "sample-v1.1:params.yaml"))["sample"]["num_examples"]
        == 150
    )
    assert sorted(git(clone, "show", "--name-only", "--format=", "HEAD").split()) == [
        "dvc.lock",
        "params.yaml",
        "reports/metrics.json",
        "reports/validation.json",
    ]
    assert sum(r3["events"][-1]["num_examples"].values()) == 150
    assert [v.tag for v in list_versions(clone)] == ["sample-v1.1", "sample-v1.0"]
    assert git(_team(clone), "rev-parse", "main") == git(clone, "rev-parse", "HEAD")


def test_failed_validation_fails_at_once_and_the_workspace_is_restored(project):
    clone, home = project
    head = git(clone, "rev-parse", "HEAD")
    committed = {f: git(clone, "show", f"HEAD:{f}") for f in ("params.yaml", "dvc.lock")}
    r, out = dag_test(home, clone, {"validate__min_examples__train": 100000})
    assert r["state"] == "failed", r
    assert r["tasks"]["validate"] == "failed" and r["tasks"]["publish"] == "upstream_failed"
    assert "up_for_retry" not in json.dumps(r) and "UP_FOR_RETRY" not in out  # no retry
    assert r["tasks"]["restore_workspace"] == "success"
    assert "restored params.yaml as committed at HEAD" in out
    assert {f: (clone / f).read_text().strip() for f in committed} == committed
    assert git(clone, "rev-parse", "HEAD") == head and len(r["events"]) == 2


def test_invalid_param_fails_the_first_task_with_the_validation_message(project):
    clone, home = project
    before = (clone / "params.yaml").read_bytes()
    r, out = dag_test(home, clone, {"preprocess__split__ratios__train": 0.5})
    assert r["state"] == "failed"
    assert r["tasks"]["apply_params"] == "failed"
    assert all(r["tasks"][t] == "upstream_failed" for t in [*STAGE_TASKS, "publish"])
    assert "params refused, params.yaml unchanged" in out
    assert "key 'preprocess.split.ratios': split ratios must sum to 1, they sum to 0.7" in out
    assert (clone / "params.yaml").read_bytes() == before

    # a dataset name git cannot put in a tag is refused before any work
    r, out = dag_test(home, clone, {"dataset__name": "a..b"})
    assert r["state"] == "failed" and r["tasks"]["apply_params"] == "failed"
    assert "key 'dataset.name': 'a..b' cannot name a git tag" in out
    assert (clone / "params.yaml").read_bytes() == before
