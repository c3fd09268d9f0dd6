"""Ingest on Beam writes the in-process snapshot and manifest bytes, at 1 and 2 workers and any
range size; errors are the in-process ones, in file order.

Needs Apache Beam (the `beam` extra); skipped without it. DirectRunner only: it runs offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("apache_beam", reason="Apache Beam is not installed (the 'beam' extra)")

from dataops.beam.ingest import run_ingest_beam  # noqa: E402
from dataops.config import IngestParams  # noqa: E402
from dataops.errors import DatasetError  # noqa: E402
from dataops.stages.ingest import run_ingest  # noqa: E402
from tests.support.project import repo_params, run_cli  # noqa: E402
from tests.support.records import folder_bytes  # noqa: E402

IN_MEMORY = "--direct_num_workers=1 --direct_running_mode=in_memory"
THREADS_2 = "--direct_num_workers=2 --direct_running_mode=multi_threading"
PROCESSES_2 = "--direct_num_workers=2 --direct_running_mode=multi_processing"


def _digests(directory: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256(data).hexdigest() for name, data in folder_bytes(directory).items()
    }


def _messy_csv(path: Path, rows: int = 600) -> None:
    """Blank lines (one at a range's first line), a CR-only line, a short row with a readable
    key, an empty key, quoting: every count and line number depends on the lines before."""
    lines = ["id,x,name"] + [f"{i},{i * 0.25},n{i % 7}" for i in range(rows)]
    lines[10] = ""
    lines[11] = ""
    lines[150] = "99999,1"
    lines[200] = ",2.0,x"
    lines[320] = "\r"
    lines[400] = '"q,1",0.5,"a ""b"""'
    path.write_text("\n".join(lines) + "\n")


def _params(key: str | None = "id", **source) -> IngestParams:
    return IngestParams.model_validate(
        {
            "key": key,
            "batch_rows": 64,
            "sources": [{"name": "t", "format": "csv", "path": "t.csv", **source}],
        }
    )


@pytest.mark.parametrize(
    ("key", "options", "range_bytes"),
    [
        ("id", IN_MEMORY, 500),
        ("id", PROCESSES_2, 777),
        (None, THREADS_2, 500),
        ("id", IN_MEMORY, 1 << 20),
    ],
    ids=["1-worker", "2-processes", "keyless-2-threads", "one-range"],
)
def test_ingest_on_beam_writes_the_same_bytes(tmp_path, key, options, range_bytes):
    _messy_csv(tmp_path / "t.csv")
    run_ingest(_params(key), tmp_path, tmp_path / "local", "skip")
    result = run_ingest_beam(
        _params(key), tmp_path, tmp_path / "beam", "skip", options, range_bytes=range_bytes
    )
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "local")
    assert result.out == tmp_path / "beam" and result.num_rows == (595 if key else 596)
    assert result.skipped == (
        {"malformed_row": 1, "missing_key": 1} if key else {"malformed_row": 1}
    )


def test_the_first_bad_row_in_the_file_is_the_error(tmp_path):
    """Bad rows in several ranges: whichever worker finishes first, the error is the one a
    whole read meets first."""
    _messy_csv(tmp_path / "t.csv")
    with pytest.raises(DatasetError) as local:
        run_ingest(_params(), tmp_path, tmp_path / "local")
    with pytest.raises(DatasetError) as beam:
        run_ingest_beam(_params(), tmp_path, tmp_path / "beam", "fail", THREADS_2, range_bytes=300)
    assert str(beam.value) == str(local.value)
    assert str(beam.value).startswith("t.csv: line 151: expected 3 columns, got 2")
    assert not (tmp_path / "beam").exists()


def test_a_key_repeated_across_ranges_is_joined_as_in_process(tmp_path):
    _messy_csv(tmp_path / "t.csv")
    with open(tmp_path / "t.csv", "a") as f:
        f.write("3,9.5,dup\n")  # key 3 again, many ranges later
    run_ingest(_params(), tmp_path, tmp_path / "local", "skip")
    result = run_ingest_beam(_params(), tmp_path, tmp_path / "beam", "skip", IN_MEMORY, 400)
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "local")
    assert result.skipped["duplicate_key"] == 1
    (tmp_path / "t.csv").write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(300)) + "3,x\n")
    with pytest.raises(DatasetError, match=r"t.csv: line 302: key '3' repeats line 5"):
        run_ingest_beam(_params(), tmp_path, tmp_path / "fail", "fail", IN_MEMORY, 400)


def test_latin1_and_other_formats_run_whole(tmp_path):
    """Another encoding is one range; a JSON Lines source runs the in-process ingest: the same
    bytes either way."""
    text = "id,name\n" + "".join(f"{i},caf\u00e9 {i}\n" for i in range(50))
    (tmp_path / "t.csv").write_bytes(text.encode("latin-1"))
    run_ingest(_params(encoding="latin-1"), tmp_path, tmp_path / "local")
    run_ingest_beam(_params(encoding="latin-1"), tmp_path, tmp_path / "beam", "fail", IN_MEMORY, 64)
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "local")
    (tmp_path / "j.jsonl").write_text("".join(f'{{"id": {i}, "v": {i / 2}}}\n' for i in range(20)))
    spec = {"sources": [{"name": "j", "format": "jsonl", "path": "j.jsonl"}]}
    run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "jl")
    run_ingest_beam(IngestParams.model_validate(spec), tmp_path, tmp_path / "jb", "fail", IN_MEMORY)
    assert _digests(tmp_path / "jb") == _digests(tmp_path / "jl")


def test_cli_ingest_engine_beam(tmp_path):
    import yaml

    _messy_csv(tmp_path / "t.csv")
    spec = {"sources": [{"name": "t", "format": "csv", "path": "t.csv"}]}
    data = repo_params(dataset={"on_error": "skip"})
    data["ingest"] = spec
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = run_cli(
        "ingest", "--out", "beam", "--engine", "beam", "--beam-options", IN_MEMORY, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "engine=beam" in r.stdout + r.stderr
    run_ingest(IngestParams.model_validate(spec), tmp_path, tmp_path / "local", "skip")
    assert _digests(tmp_path / "beam") == _digests(tmp_path / "local")
