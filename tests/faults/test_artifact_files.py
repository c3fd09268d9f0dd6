"""Hostile and corrupt copies of the JSON files one stage writes and another reads (manifest,
state, metadata, validation report, export description): every reader fails with one line naming
the file — never a traceback, a RecursionError, a silently kept duplicate key or a NaN."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dataops.artifacts import ExportInfo, Manifest, PreprocessState, ValidationReport
from dataops.errors import DatasetError
from dataops.loader import Loader
from dataops.metadata import read_metadata
from tests.support.project import REPO, run_cli

FILES = {  # name -> (path under the project root, the reader of that file)
    "manifest": ("data/snapshot/manifest.json", Manifest.read),
    "state": ("data/preprocessed/state.json", PreprocessState.read),
    "validation": ("reports/validation.json", ValidationReport.read),
    "metadata": ("data/tfrecords/metadata.json", lambda p: read_metadata(Path(p).parent)),
}


def _duplicate_first_key(text: str) -> str:
    data = json.loads(text)
    key = sorted(data)[0]
    return "{" + json.dumps(key) + ": null, " + text.lstrip()[1:]


def _nan_inside(text: str) -> str:
    data = json.loads(text)
    key = sorted(data)[0]
    return "{" + json.dumps(key) + ": NaN, " + text.lstrip()[1:].replace(f'"{key}"', '"_x"', 1)


HOSTILE = {  # name -> (good text -> hostile bytes, what the one line says)
    "nested_too_deeply": (lambda t: b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    "huge_integer": (lambda t: b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON (Exceeds the limit"),
    "duplicate_key": (lambda t: _duplicate_first_key(t).encode(), "not valid JSON (duplicate key"),
    "nan": (lambda t: _nan_inside(t).encode(), "not valid JSON (NaN is not JSON"),
    "latin1": (lambda t: b'{"a": "\xe9"}', "not UTF-8 text (byte 7)"),
    "truncated": (lambda t: t.encode()[: len(t) // 2], "not valid JSON ("),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("name", sorted(FILES))
def test_every_reader_names_the_file_in_one_line(small_dataset, tmp_path, name, hostile):
    rel, read = FILES[name]
    change, expected = HOSTILE[hostile]
    path = tmp_path / Path(rel).name
    path.write_bytes(change((small_dataset / rel).read_text(encoding="utf-8")))
    with pytest.raises(DatasetError) as err:
        read(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and expected in msg, msg
    assert "\n" not in msg and len(msg) < 400


def test_an_unreadable_file_is_named(tmp_path):
    loop = tmp_path / "state.json"
    loop.symlink_to(loop)
    with pytest.raises(DatasetError, match=r"state.json: cannot be read \(too many levels"):
        PreprocessState.read(loop)
    folder = tmp_path / "validation.json"
    folder.mkdir()
    with pytest.raises(DatasetError, match=r"validation.json: is a folder, not a JSON file"):
        ValidationReport.read(folder)


def test_a_key_holding_a_newline_stays_on_one_line(small_dataset, tmp_path):
    path = tmp_path / "validation.json"
    data = json.loads((small_dataset / "reports/validation.json").read_text())
    data["num_examples"] = {"train\nerror: all is fine": "x" * 500}
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as err:
        ValidationReport.read(path)
    msg = str(err.value)
    assert "\n" not in msg and "at 'num_examples.train\\nerror: all is fine'" in msg, msg


def test_a_hostile_export_description_stops_the_loader(small_tfrecords, tmp_path):
    d = tmp_path / "export"
    d.mkdir()
    shutil.copy(small_tfrecords / "metadata.json", d)
    (d / "export.json").write_bytes(b'{"format": "snapshot", "format": "hdf5"}')
    with pytest.raises(DatasetError, match=r"export.json: not valid JSON \(duplicate key format\)"):
        Loader(d, "train")
    assert ExportInfo  # the model the loader reads (imported for the reader table above)


def test_the_cli_prints_one_line_for_a_corrupt_manifest(small_dataset, tmp_path):
    """Through the process: exit 1, one `error:` line naming the file, nothing written."""
    snap = tmp_path / "snapshot"
    shutil.copytree(small_dataset / "data" / "snapshot", snap)
    (snap / "manifest.json").write_bytes(b"[" * 100_000)
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    r = run_cli(
        "preprocess", "-p", str(params), "--snapshot", str(snap), "--out", str(tmp_path / "pre")
    )
    assert r.returncode == 1, r.stderr
    assert (
        r.stderr.strip() == f"error: {snap / 'manifest.json'}: not valid JSON (nested too deeply)"
    )
    assert not (tmp_path / "pre").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "snapshot"]
