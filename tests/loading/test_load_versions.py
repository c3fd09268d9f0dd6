"""dataops.load by git revision: two published versions in a temporary git + DVC repository.

Each tag loads its own data through DVC (fetched from the local remote after the cache is
emptied), and the workspace stays exactly as it was: `git status` clean, files unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import dataops
from dataops.errors import DatasetError
from dataops.fsutil import sha256_file
from dataops.loader import Loader
from tests.support.project import make_project, sh

pytestmark = pytest.mark.slow

GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t")


def ids(ds) -> list[str]:
    return [x.decode() for b in ds for x in b["id"].numpy()]


def workspace(root: Path) -> dict[str, str]:
    """sha256 of every file of the workspace outside .git and .dvc (the DVC cache may grow)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in (".git", ".dvc"):
            out[str(rel)] = sha256_file(p)
    return out


def publish(proj: Path, tag: str) -> dict[str, list]:
    sh("dvc", "repro", cwd=proj)
    sh(*GIT, "add", "-A", cwd=proj)
    sh(*GIT, "commit", "-qm", f"dataset {tag}", cwd=proj)
    sh(*GIT, "tag", tag, cwd=proj)
    sh("dvc", "push", cwd=proj)
    d = proj / "data" / "tfrecords"
    return {
        "ids": ids(dataops.load(d, "train+validation", features=["id"], batch_size=64)),
        "labels": [
            int(x) for b in dataops.load(d, "test", features=["label"]) for x in b["label"].numpy()
        ],
        "fingerprint": Loader(d, "test").fingerprint,
    }


def test_each_tag_loads_its_own_version_without_touching_the_workspace(tmp_path):
    proj = make_project(tmp_path / "proj", num_examples=120)
    v1 = publish(proj, "sample-v1.0")
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["sample"]["seed"] = 1
    params["sample"]["num_examples"] = 100
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    v2 = publish(proj, "sample-v2.0")
    assert v1["fingerprint"] != v2["fingerprint"] and len(v1["ids"]) != len(v2["ids"])

    shutil.rmtree(
        proj / ".dvc" / "cache"
    )  # the local cache lacks everything: DVC must use the remote
    head = sh("git", "rev-parse", "HEAD", cwd=proj)
    before = workspace(proj)
    assert sh("git", "status", "--porcelain", cwd=proj) == ""

    cache = tmp_path / "dataops-cache"
    for tag, want in (("sample-v1.0", v1), ("sample-v2.0", v2)):
        got = ids(
            dataops.load(
                tag, "train+validation", repo=proj, cache_dir=cache, features=["id"], batch_size=64
            )
        )
        assert got == want["ids"], tag
        labels = [
            int(x)
            for b in dataops.load(tag, "test", repo=proj, cache_dir=cache, features=["label"])
            for x in b["label"].numpy()
        ]
        assert labels == want["labels"], tag
        assert Loader(tag, "test", repo=proj, cache_dir=cache).fingerprint == want["fingerprint"]
    assert len(list(cache.iterdir())) == 2  # one materialized directory per version

    assert sh("git", "status", "--porcelain", cwd=proj) == ""
    assert sh("git", "rev-parse", "HEAD", cwd=proj) == head
    assert workspace(proj) == before

    with pytest.raises(DatasetError, match=r"revision 'no-such-tag'"):
        dataops.load("no-such-tag", repo=proj, cache_dir=cache)
    with pytest.raises(DatasetError, match=r"sample-v1.0:data/nowhere/metadata.json: not found"):
        dataops.load("sample-v1.0", repo=proj, path="data/nowhere", cache_dir=cache)


def cached_files(directory: Path) -> set[str]:
    return {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and not p.relative_to(directory).parts[0].startswith(".dataops")
    }


def split_files(meta, name: str) -> set[str]:
    split = meta.split(name)
    return {s.file for s in split.shards} | {s.index.file for s in split.shards if s.index}


def test_a_version_fetches_only_the_splits_it_reads_and_an_unreachable_remote_is_one_line(
    tmp_path,
):
    proj = make_project(tmp_path / "proj", num_examples=120)
    publish(proj, "v1")
    shutil.rmtree(proj / ".dvc" / "cache")
    cache = tmp_path / "dataops-cache"

    test_ids = ids(dataops.load("v1", "test", repo=proj, cache_dir=cache, features=["id"]))
    (directory,) = cache.iterdir()
    meta = Loader(directory, "test").metadata
    assert {s.name for s in meta.splits} == {"train", "validation", "test"}
    assert cached_files(directory) == {"metadata.json"} | split_files(meta, "test")
    assert sorted(p.name for p in (directory / ".dataops-fetched").iterdir()) == ["test"]
    assert test_ids == ids(dataops.load(proj / "data" / "tfrecords", "test", features=["id"]))

    # another split of the same version fetches the rest into the same directory
    got = ids(
        dataops.load("v1", "train[:50%]+validation", repo=proj, cache_dir=cache, features=["id"])
    )
    assert got == ids(
        dataops.load(proj / "data" / "tfrecords", "train[:50%]+validation", features=["id"])
    )
    assert [p.name for p in cache.iterdir()] == [directory.name]
    assert cached_files(directory) == {"metadata.json"} | {
        f for s in ("train", "validation", "test") for f in split_files(meta, s)
    }

    # the remote is gone and the local DVC cache is empty: one line naming remote and revision
    shutil.rmtree(proj / ".dvc" / "cache", ignore_errors=True)
    store = proj / ".dvcstore"  # url = ../.dvcstore, relative to .dvc/
    assert store.is_dir()
    store.rename(store.with_name("moved-away"))
    with pytest.raises(DatasetError) as info:
        dataops.load("v1", "test", repo=proj, cache_dir=tmp_path / "other-cache")
    message = str(info.value)
    assert "\n" not in message
    assert "revision 'v1'" in message and f"DVC remote 'local' ({store})" in message, message

    with pytest.raises(DatasetError) as info:
        dataops.load("no-such-rev", "test", repo=proj, cache_dir=tmp_path / "other-cache")
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"cannot read revision 'no-such-rev' of {proj}: no such git revision (a tag, branch or commit)"
    )


def test_credentials_are_stripped_from_a_remote_url():
    from dataops.loading.source import _strip_credentials

    assert _strip_credentials("s3://KEY:SECRET@bucket/x") == "s3://bucket/x"
    assert _strip_credentials("https://user@host:8080/a?b") == "https://host:8080/a?b"
    assert _strip_credentials("/plain/dir") == "/plain/dir"
