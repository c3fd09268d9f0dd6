"""Source containment and file types: every path resolves inside the project (or an
`ingest.allow_outside` folder); folders, devices and FIFOs given as files are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataops.config import IngestParams
from dataops.errors import ConfigError
from dataops.stages.ingest import read_manifest, run_ingest
from tests.support.records import read_snapshot


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "in.csv").write_text("id,x\n1,a\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "out.csv").write_text("id,x\n1,b\n")
    return root


def refused(root: Path, path: str, fmt: str = "csv", **ingest_keys) -> str:
    params = IngestParams.model_validate(
        {"sources": [{"name": "s", "format": fmt, "path": path}], **ingest_keys}
    )
    with pytest.raises(ConfigError) as err:
        run_ingest(params, root, root / "out")
    assert not (root / "out").exists()
    return str(err.value)


def test_relative_path_outside_is_refused(project):
    msg = refused(project, "../shared/out.csv")
    assert msg.startswith(
        "params.yaml: key 'ingest.sources.0.path': ../shared/out.csv resolves to "
    )
    assert msg.endswith(
        f"outside the project {project.resolve()}; list its folder in ingest.allow_outside to read it"
    )
    assert refused(project, "../../../../../../etc/passwd").startswith(
        "params.yaml: key 'ingest.sources.0.path': ../../../../../../etc/passwd resolves to /etc/passwd, outside"
    )


def test_absolute_path_outside_is_refused(project, tmp_path):
    target = str(tmp_path / "shared" / "out.csv")
    assert f"{target} resolves to {target}, outside the project" in refused(project, target)


def test_symlink_pointing_outside_is_refused(project):
    (project / "link.csv").symlink_to(project.parent / "shared" / "out.csv")
    assert "link.csv resolves to " in refused(project, "link.csv")
    # a symlinked folder inside an image folder source, too
    (project / "imgs" / "cls").mkdir(parents=True)
    (project / "outside_png").mkdir()
    (project.parent / "shared" / "a.png").write_bytes(b"\x89PNG")
    (project / "imgs" / "cls" / "a.png").symlink_to(project.parent / "shared" / "a.png")
    assert "imgs/cls/a.png resolves to " in refused(project, "imgs", fmt="image_folder")


def test_allow_outside_admits_a_folder_and_records_relative_paths(project):
    params = IngestParams.model_validate(
        {
            "sources": [{"name": "s", "format": "csv", "path": "../shared/out.csv"}],
            "allow_outside": ["../shared"],
        }
    )
    run_ingest(params, project, project / "out")
    assert read_snapshot(project / "out").column("x").to_pylist() == ["b"]
    manifest = read_manifest(project / "out").to_json()
    assert manifest["sources"]["s"]["path"] == "../shared/out.csv"
    assert list(manifest["sources"]["s"]["files"]) == ["../shared/out.csv"]
    assert manifest["params"]["allow_outside"] == ["../shared"]
    assert str(project.parent) not in (project / "out" / "manifest.json").read_text()


def test_manifest_path_is_normalized_inside_the_project(project):
    (project / "sub").mkdir()
    params = IngestParams.model_validate(
        {"sources": [{"name": "s", "format": "csv", "path": "./sub/../in.csv"}]}
    )
    run_ingest(params, project, project / "out")
    assert read_manifest(project / "out").sources["s"].files == {
        "in.csv": read_manifest(project / "out").sources["s"].files["in.csv"]
    }


def test_folder_given_as_csv(project):
    (project / "d").mkdir()
    assert refused(project, "d") == (
        "params.yaml: key 'ingest.sources.0.path': d is a folder, not a csv file"
    )
    assert refused(project, "in.csv", fmt="image_folder") == (
        "params.yaml: key 'ingest.sources.0.path': in.csv is not a folder (format image_folder)"
    )


def test_character_device_is_refused_without_reading(project):
    assert refused(project, "/dev/zero", allow_outside=["/dev"]) == (
        "params.yaml: key 'ingest.sources.0.path': /dev/zero is a character device, not a regular file"
    )


def test_fifo_is_refused_without_opening(project):
    os.mkfifo(project / "pipe.csv")
    assert refused(project, "pipe.csv") == (
        "params.yaml: key 'ingest.sources.0.path': pipe.csv is a FIFO (named pipe), not a regular file"
    )


def test_missing_path(project):
    assert refused(project, "nope.csv") == (
        "params.yaml: key 'ingest.sources.0.path': nope.csv does not exist"
    )


def test_image_path_column_cannot_escape_the_project(project):
    (project / "t.csv").write_text("id,pic\n1,../../shared/out.csv\n")
    params = IngestParams.model_validate(
        {"sources": [{"name": "t", "format": "csv", "path": "t.csv", "image_columns": ["pic"]}]}
    )
    with pytest.raises(Exception) as err:
        run_ingest(params, project, project / "out")
    assert str(err.value) == (
        "t.csv: line 2: image file '../../shared/out.csv' cannot be read: it lies outside the "
        "project (see ingest.allow_outside) (set dataset.on_error: skip to drop such rows and count them)"
    )
