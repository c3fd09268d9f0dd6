"""The DVC pipeline end to end in a temporary git repository: repro, no-op repro, byte-identical
rebuilds, targeted re-runs, push → fresh clone → pull → verify, and the committed dvc.lock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dataops.fsutil import sha256_file
from tests.support.project import REPO, make_project, sh

pytestmark = pytest.mark.slow


def shard_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file of the dataset directory (shard indexes are under index/)."""
    d = root / "data" / "tfrecords"
    return {
        p.relative_to(d).as_posix(): sha256_file(p) for p in sorted(d.rglob("*")) if p.is_file()
    }


def ran(output: str) -> list[str]:
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]


def test_repro_noop_rebuild_targeted_rerun_push_pull(tmp_path):
    proj = make_project(tmp_path / "proj")
    out = sh("dvc", "repro", cwd=proj)
    assert ran(out) == ["sample", "ingest", "preprocess", "serialize", "validate"]
    first = shard_hashes(proj)
    lock = (proj / "dvc.lock").read_text()
    assert str(proj) not in lock

    out = sh("dvc", "repro", cwd=proj)
    assert ran(out) == [] and "Data and pipelines are up to date." in out

    for d in ("sample", "snapshot", "preprocessed", "tfrecords"):
        shutil.rmtree(proj / "data" / d)
    out = sh("dvc", "repro", "--force", "--no-run-cache", cwd=proj)
    assert ran(out) == ["sample", "ingest", "preprocess", "serialize", "validate"]
    assert shard_hashes(proj) == first
    assert (proj / "dvc.lock").read_text() == lock

    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["validate"]["min_examples"]["train"] = 11
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(sh("dvc", "repro", cwd=proj)) == ["validate"]

    sh("dvc", "push", cwd=proj)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "dataset", cwd=proj)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(proj), str(clone), cwd=tmp_path)
    sh("dvc", "remote", "modify", "--local", "local", "url", str(proj / ".dvcstore"), cwd=clone)
    sh("dvc", "pull", cwd=clone)
    assert shard_hashes(clone) == first
    assert "match metadata.json" in sh("dataops", "verify", "data/tfrecords", cwd=clone)


def test_committed_dvc_lock_is_what_the_pipeline_reproduces(tmp_path):
    """`make demo` on a fresh machine must leave the committed dvc.lock unchanged."""
    proj = make_project(tmp_path / "proj", num_examples=None)
    sh("dvc", "repro", cwd=proj)
    assert (proj / "dvc.lock").read_text() == (REPO / "dvc.lock").read_text(), (
        "dvc.lock drifted: run `make demo` and commit dvc.lock"
    )
    assert (
        sh("git", "status", "--porcelain", "dvc.lock", "reports/validation.json", cwd=proj).strip()
        == ""
    )
