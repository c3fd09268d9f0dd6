"""Typed artifacts: every JSON file one stage writes and another reads has a model, a committed
JSON Schema that follows it, and reads that fail in one line naming the file and the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from dataops import artifacts
from dataops.artifacts import (
    ARTIFACTS,
    ExportInfo,
    Manifest,
    PreprocessState,
    PublishedReport,
    ValidationReport,
)
from dataops.config import SerializeParams
from dataops.errors import DatasetError
from dataops.fsutil import dumps_json
from dataops.loader import Loader
from dataops.metadata import DatasetMetadata
from dataops.stages.serialize import run_serialize
from tests.support.project import run_cli

FILES = {  # schema name -> (model, path under the project root)
    "metadata": (DatasetMetadata, "data/tfrecords/metadata.json"),
    "manifest": (Manifest, "data/snapshot/manifest.json"),
    "state": (PreprocessState, "data/preprocessed/state.json"),
    "validation": (ValidationReport, "reports/validation.json"),
}


def test_committed_schemas_match_the_models():
    assert artifacts.stale_schemas() == [], "regenerate with: dataops schema --write"
    assert set(ARTIFACTS) == {*FILES, "export"}  # export.json: tests/tools/test_export.py


def test_schema_check_names_a_stale_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "SCHEMA_DIR", tmp_path)
    assert artifacts.stale_schemas() == list(ARTIFACTS)  # none written yet
    artifacts.write_schemas()
    assert artifacts.stale_schemas() == []
    path = tmp_path / "state.schema.json"
    path.write_text(path.read_text().replace('"splits"', '"split_list"'))
    assert artifacts.stale_schemas() == ["state"]


def test_cli_schema_check_and_print():
    r = run_cli("schema", "--check")
    assert r.returncode == 0, r.stderr
    r = run_cli("schema", "manifest")
    assert r.returncode == 0 and json.loads(r.stdout) == artifacts.json_schema("manifest")
    r = run_cli("schema", "nope")
    assert (
        r.returncode == 2
        and "choose one of metadata, manifest, state, validation, export" in r.stderr
    )


@pytest.mark.parametrize("name", sorted(FILES))
def test_stage_outputs_validate_and_round_trip_byte_for_byte(small_dataset, name):
    """The real outputs of the pipeline satisfy the committed schema, and reading then writing
    them through the model gives the same bytes (the model is the file's whole shape)."""
    model, rel = FILES[name]
    path = small_dataset / rel
    data = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, json.loads(artifacts.schema_path(name).read_text()))
    parsed = model.model_validate(data)
    assert dumps_json(parsed.model_dump(mode="json")) == path.read_text(encoding="utf-8")


@pytest.fixture
def copy_of(small_dataset, tmp_path):
    def copy(rel: str) -> Path:
        dest = tmp_path / Path(rel).name
        shutil.copy(small_dataset / rel, dest)
        return dest

    return copy


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_an_unknown_key_is_refused_with_file_and_field(copy_of):
    path = copy_of("data/snapshot/manifest.json")
    _edit(path, lambda d: d["counts"]["examples"].update(extra=1))
    with pytest.raises(DatasetError) as err:
        Manifest.read(path)
    msg = str(err.value)
    assert msg == (
        f"{path}: invalid ingest manifest at 'counts.examples.extra': Extra inputs are not"
        " permitted — run the ingest stage again"
    )


def test_a_missing_or_mistyped_field_is_named(copy_of):
    path = copy_of("data/preprocessed/state.json")
    _edit(path, lambda d: d["splits"][1].pop("num_examples"))
    with pytest.raises(
        DatasetError,
        match=r"state.json: invalid preprocess state at 'splits.1.num_examples': Field required",
    ):
        PreprocessState.read(path)
    path = copy_of("reports/validation.json")
    _edit(path, lambda d: d.update(ok="yes", violations="none"))
    with pytest.raises(DatasetError) as err:
        ValidationReport.read(path)
    assert "validation.json: invalid validation report at 'ok': " in str(err.value)
    assert "(and 1 more)" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "manifest.json: not found — run the ingest stage first"),
        ("", "manifest.json: not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        ('{"key": ', "manifest.json: not valid JSON"),
        ("[1, 2]", "manifest.json: invalid ingest manifest at '(top level)': Input should be"),
    ],
)
def test_a_missing_or_corrupt_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError) as err:
        Manifest.read(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_corrupt_state_stops_serialize_naming_the_field(small_dataset, tmp_path):
    pre = tmp_path / "pre"
    shutil.copytree(small_dataset / "data" / "preprocessed", pre)
    _edit(pre / "state.json", lambda d: d["features"][0].update(kind="matrix"))
    with pytest.raises(DatasetError) as err:
        run_serialize(SerializeParams(), "sample", pre, tmp_path / "ds")
    assert str(err.value).startswith(
        f"{pre / 'state.json'}: invalid preprocess state at 'features.0.kind': Input should be"
    )
    assert not (tmp_path / "ds").exists()


def test_a_bad_export_description_stops_the_loader_naming_the_field(small_tfrecords, tmp_path):
    d = tmp_path / "export"
    d.mkdir()
    shutil.copy(small_tfrecords / "metadata.json", d)
    ExportInfo(format="parquet", dataset="s", fingerprint="f", num_examples={}).write(
        d / "export.json"
    )
    with pytest.raises(DatasetError, match="an export in format 'parquet'"):
        Loader(d, "train")
    _edit(d / "export.json", lambda e: e.update(format="csv"))
    with pytest.raises(DatasetError) as err:
        Loader(d, "train")
    assert str(err.value).startswith(
        f"{d / 'export.json'}: invalid export description at 'format': Input should be 'snapshot', 'parquet' or 'hdf5'"
    )
    assert str(err.value).endswith("— run `dataops export` again")


def test_a_nan_in_the_fitted_state_is_refused_not_written_as_null(small_dataset, tmp_path):
    state = PreprocessState.read(small_dataset / "data" / "preprocessed" / "state.json")
    state.state["weight"]["mean"] = float("nan")
    with pytest.raises(
        DatasetError, match="state.json: cannot write the preprocess state: Out of range float"
    ):
        state.write(tmp_path / "state.json")
    assert not (tmp_path / "state.json").exists()


def test_the_published_view_reads_a_subset_of_the_report():
    assert set(PublishedReport.model_fields) <= set(ValidationReport.model_fields)


def test_a_committed_report_is_salvaged_field_by_field():
    r = PublishedReport.salvage(
        {
            "ok": "true",
            "fingerprint": 7,
            "num_examples": {"train": 5, "test": "5", "x": True, "y": 2.0, "z": 2.5},
            "num_bytes": [1],
            "violations": ["a", 3],
            "unknown": {},
        }
    )
    assert (r.ok, r.fingerprint, r.num_bytes) == (None, None, {})
    assert r.num_examples == {"train": 5, "y": 2} and r.violations == ["a", "3"]
    assert PublishedReport.salvage([1]) == PublishedReport()
