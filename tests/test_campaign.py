"""The edge-case campaign of issues 11 and 12, re-run as a user would (`dataops` as a
subprocess in a fresh project): each row asserts the exit code and the exact last line of
stderr, or the exact stored values."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.support.project import run_cli

SKIP_HINT = " (set dataset.on_error: skip to drop such rows and count them)"


def project(root: Path, files: dict[str, str | bytes], features: list[dict], **kw) -> Path:
    """A project with one source `a` (format from the file suffix) and the given features."""
    (name, _), *_ = files.items()
    for path, content in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    params = {
        "dataset": {"name": "t", "on_error": kw.get("on_error", "fail")},
        "ingest": {
            "key": "id",
            "sources": [{"name": "a", "format": kw.get("format", "csv"), "path": name}],
        },
        "preprocess": {
            "split": {"seed": 0, "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}},
            "features": [{"name": "id", "kind": "key"}, *features],
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def last_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


X = {"name": "x", "kind": "numeric", "standardize": False}
ROWS = "".join(f"{i},{i}\n" for i in range(8, 16))

NUMERIC_CASES = [
    pytest.param(
        "id,x\n1,inf\n" + ROWS,
        [X],
        "fail",
        1,
        "error: a.csv: line 2 (id='1'): column 'x': inf is not a finite number" + SKIP_HINT,
        id="inf-in-csv-is-a-bad-row",
    ),
    pytest.param(
        "id,x\n1,-1e400\n" + ROWS,
        [X],
        "fail",
        1,
        "error: a.csv: line 2 (id='1'): column 'x': -inf is not a finite number" + SKIP_HINT,
        id="beyond-float64-text-is-a-bad-row",
    ),
    pytest.param(
        "id,x\n1,1e39\n" + ROWS,
        [{**X, "impute": "zero"}],
        "fail",
        1,
        "error: a.csv: line 2 (id='1'): column 'x': 1e+39 is beyond float32 (|x| <= 3.40282e+38)"
        + SKIP_HINT,
        id="beyond-float32-is-a-bad-row-not-inf",
    ),
    pytest.param(
        "id,x\n" + "".join(f"{i},{1e200 * (1 + i % 3)}\n" for i in range(16)),
        [{"name": "x", "kind": "numeric"}],
        "skip",
        1,
        "error: feature 'x': the train values are too large for float64 statistics "
        "(mean 1.71429e+200, std inf); rescale the column",
        id="variance-overflow-is-one-line",
    ),
]


@pytest.mark.parametrize(("csv", "features", "on_error", "code", "line"), NUMERIC_CASES)
def test_numeric_edge_values_end_in_one_line(tmp_path, csv, features, on_error, code, line):
    project(tmp_path, {"a.csv": csv}, features, on_error=on_error)
    assert run_cli("ingest", cwd=tmp_path).returncode == 0
    proc = run_cli("preprocess", cwd=tmp_path)
    assert (proc.returncode, last_line(proc)) == (code, line), proc.stderr


def test_non_finite_rows_skipped_and_counted(tmp_path):
    csv = "id,x\n1,nan\n2,inf\n3,-inf\n4,1e400\n5,-0.0\n" + ROWS
    project(tmp_path, {"a.csv": csv}, [X], on_error="skip")
    assert run_cli("ingest", cwd=tmp_path).returncode == 0
    proc = run_cli("preprocess", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    state = json.loads((tmp_path / "data/preprocessed/state.json").read_text())
    assert state["skipped"] == {"not_finite": 3}
    stored = {}
    for split in ("train", "validation", "test"):
        t = pq.read_table(tmp_path / f"data/preprocessed/{split}.parquet").to_pydict()
        stored.update(zip(t["id"], t["x"], strict=True))
    assert set(stored) == {"1", "5", *map(str, range(8, 16))}
    assert all(v == v and abs(v) < 1e30 for v in stored.values())  # no NaN, no inf stored


DEEP = "[" * 100_000 + "]" * 100_000
GRAY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"
    "0000000a49444154789c63600700000900082023c38c0000000049454e44ae426082"
)

INPUT_CASES = [
    pytest.param(
        {"a.jsonl": '{"id": 0, "x": 1}\n{"id": 1, "x": ' + DEEP + "}\n"},
        "jsonl",
        [X],
        "ingest",
        "error: a.jsonl: line 2: not valid JSON: nested deeper than Python's JSON reader goes"
        + SKIP_HINT,
        id="jsonl-deep-nesting",
    ),
    pytest.param(
        {"a.json": '[{"id": 0, "x": 1}, {"id": 1, "x": ' + DEEP + "}]"},
        "json",
        [X],
        "ingest",
        "error: a.json: element 1 (line 1): not valid JSON: nested deeper than Python's JSON reader goes",
        id="json-array-deep-nesting",
    ),
    pytest.param(
        {"imgs/a/0.png": b"", "imgs/b/1.png": GRAY_PNG},
        "image_folder",
        [
            {"name": "image", "kind": "image", "channels": 1},
            {"name": "label", "kind": "categorical"},
        ],
        "preprocess",
        "error: imgs: a/0.png (id='0'): column 'image': cannot decode image: "
        "not a known image format (an empty file)" + SKIP_HINT,
        id="empty-image-file",
    ),
    pytest.param(
        {"imgs/a/0.png": b"hello", "imgs/b/1.png": GRAY_PNG},
        "image_folder",
        [
            {"name": "image", "kind": "image", "channels": 1},
            {"name": "label", "kind": "categorical"},
        ],
        "preprocess",
        "error: imgs: a/0.png (id='0'): column 'image': cannot decode image: "
        "not a known image format (5 bytes starting b'hello')" + SKIP_HINT,
        id="not-an-image",
    ),
]


@pytest.mark.parametrize(("files", "fmt", "features", "stage", "line"), INPUT_CASES)
def test_malformed_inputs_end_in_one_line(tmp_path, files, fmt, features, stage, line):
    if fmt == "image_folder":  # enough good images that train has some
        files = {**files, **{f"imgs/b/{i}.png": GRAY_PNG for i in range(2, 12)}}
    project(tmp_path, files, features, format=fmt)
    if fmt == "image_folder":
        params = yaml.safe_load((tmp_path / "params.yaml").read_text())
        params["ingest"]["sources"][0]["path"] = "imgs"
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if stage == "preprocess":
        assert run_cli("ingest", cwd=tmp_path).returncode == 0
    proc = run_cli(stage, cwd=tmp_path)
    assert (proc.returncode, last_line(proc)) == (1, line), proc.stderr


CSV3 = "id,x,lab\n" + "".join(f"{i},{i},{'ab'[i % 2]}\n" for i in range(12))
F3 = [X, {"name": "lab", "kind": "categorical"}]

CONFIG_CASES = [
    pytest.param(
        {"validate": {"label_range": {"feature": "id", "min": 0, "max": 1}}},
        "error: params.yaml: validate.label_range.feature: feature 'id' is not an int64 scalar "
        "(a categorical, an int64 numeric or an int64 tensor of shape [])",
        id="label-range-on-the-key-is-exit-2-not-found-at-validate",
    ),
    pytest.param(
        {"ingest": {"batch_rows": 10**12}},
        "error: params.yaml: key 'ingest.batch_rows': Input should be less than or equal to "
        "1048576 (got 1000000000000)",
        id="ingest-batch-rows-bounded-like-the-others",
    ),
]


@pytest.mark.parametrize(("change", "line"), CONFIG_CASES)
def test_config_mistakes_exit_2_at_parse_time(tmp_path, change, line):
    project(tmp_path, {"a.csv": CSV3}, F3)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    for section, keys in change.items():
        params.setdefault(section, {}).update(keys)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run_cli("ingest", cwd=tmp_path)
    assert (proc.returncode, last_line(proc)) == (2, line), proc.stderr


def test_tiny_partition_bytes_stays_within_a_low_open_file_limit(tmp_path):
    """partition_bytes: 1024 once opened one file per (source, partition): thousands, ending
    in 'error: too many open files'. Now <= 64 partitions per source, split again on disk."""
    import resource
    import subprocess

    from tests.support.project import VENV_BIN

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["ingest"]["partition_bytes"] = 1024
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run_cli("sample", "--num-examples", "600", cwd=tmp_path).returncode == 0

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    proc = subprocess.run(
        [str(VENV_BIN / "dataops"), "ingest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=low_limit,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "data/snapshot/manifest.json").read_text())
    assert manifest["num_rows"] == 600


@pytest.mark.parametrize("count", [0, -5])
def test_loader_refuses_a_split_count_of_zero_or_less(small_dataset, tmp_path, count):
    """A split count lowered to 0 (or below) selected no row: every mode read 0 examples
    without an error. Now checked against the shards before the selection is sized."""
    import shutil

    import dataops
    from dataops.errors import DatasetError

    ds = tmp_path / "tfrecords"
    shutil.copytree(small_dataset / "data" / "tfrecords", ds)
    meta = json.loads((ds / "metadata.json").read_text())
    split = next(s for s in meta["splits"] if s["name"] == "validation")
    total, split["num_examples"] = split["num_examples"], count
    (ds / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    for kw in ({}, {"shuffle": True, "seed": 1}, {"cache": True}):
        with pytest.raises(DatasetError) as err:
            dataops.load(str(ds), "validation", **kw)
        assert str(err.value) == (
            f"metadata.json: split 'validation' says {count} examples, its shards list {total}"
        )


def test_init_project_ignores_the_lock_files_and_run_reports(tmp_path):
    """After `dataops init` and a stage, `git status` listed data/.snapshot.incomplete-lock
    and reports/runs/*.json: files never to commit, left in every user project."""
    import subprocess

    (tmp_path / ".gitignore").write_text("/venv")  # the user's own, without a final newline
    (tmp_path / "t.csv").write_text("x,lab\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20)))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert run_cli("init", "-s", "t.csv", "--label", "lab", cwd=tmp_path).returncode == 0
    assert (tmp_path / ".gitignore").read_text() == "/venv\n*.incomplete-*\n/reports/runs/\n"
    assert run_cli("ingest", cwd=tmp_path).returncode == 0
    status = subprocess.run(
        ["git", "status", "--porcelain", "-uall"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.split("\n")
    assert [line for line in status if "incomplete" in line or "reports/runs" in line] == []
    assert (tmp_path / "data" / ".snapshot.incomplete-lock").exists()  # kept, but ignored


def test_yaml_merge_keys_are_read_like_dvc_reads_them(tmp_path):
    """`<<: *base` (which DVC's YAML reader accepts) ended in 'could not determine a
    constructor for the tag ...merge'; duplicate explicit keys stay refused."""
    from dataops.config import load_yaml
    from dataops.errors import ConfigError

    text = "x: &b {name: t, on_error: skip}\ndataset:\n  <<: *b\n  name: u\n"
    assert load_yaml(text) == {
        "x": {"name": "t", "on_error": "skip"},
        "dataset": {"name": "u", "on_error": "skip"},
    }
    with pytest.raises(ConfigError) as err:
        load_yaml("dataset:\n  <<: {name: t}\n  name: u\n  name: v\n")
    assert str(err.value) == (
        "params.yaml: duplicate key 'name' at line 4 (first at line 3); "
        "DVC refuses such a file too — keep one"
    )
