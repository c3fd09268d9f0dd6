"""`bench/run.py --quick` runs end to end and writes well-formed results (the structure, never the speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import REPO, tool_env

slow = pytest.mark.slow  # bench/run.py --quick: ~4 min (the beam section ~2.5)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    env = tool_env()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@slow
def test_quick_run_writes_json_markdown_and_chart(quick_results: Path):
    res = json.loads((quick_results / "results.json").read_text())
    assert res["quick"] is True
    assert res["machine"]["cpu_count"] >= 1
    for pkg in ("tensorflow", "protobuf", "dvc", "apache-airflow"):
        assert pkg in res["versions"]
    assert (
        res["versions"]["protobuf"] and res["versions"]["dvc"] and res["versions"]["apache-airflow"]
    )
    assert res["versions"]["tensorflow"] or res["versions"]["tensorflow-cpu"]
    assert set(res["figures"]) == {
        "serialize",
        "read",
        "read_shuffled",
        "gzip",
        "memory",
        "ingest",
        "preprocess",
        "dvc",
        "airflow",
        "beam",
    }
    shuffled = res["figures"]["read_shuffled"]["small"]
    assert shuffled["load_records_per_s"] > 0 and shuffled["parse_single_records_per_s"] > 0

    names = [t["name"] for t in res["targets"]]
    assert sorted(names) == sorted(res["ratios"])
    assert len(names) == 19
    for t in res["targets"]:
        assert t["op"] in (">=", "<=") and t["threshold"] > 0 and t["unit"] in ("x", "s")
        if t["measured"] is None:
            assert t["pass"] is None and t["note"], f"{t['name']}: missing without saying why"
        else:
            assert t["measured"] > 0
            assert t["pass"] == (
                t["measured"] >= t["threshold"]
                if t["op"] == ">="
                else t["measured"] <= t["threshold"]
            )
    assert res["all_pass"] == all(t["pass"] for t in res["targets"])

    ser = res["figures"]["serialize"]
    for kind in ("small", "image"):
        s = ser[kind]
        assert s["dataops_records_per_s"] > 0 and s["loop_records_per_s"] > 0
        assert s["ratio"] == res["ratios"][f"serialize_{kind}_vs_loop"]
    # The generated records have the sizes the issue names: ~250 B and ~12 KB.
    assert 200 <= ser["small"]["bytes_per_record"] <= 320
    assert 12_000 <= ser["image"]["bytes_per_record"] <= 12_600
    assert res["figures"]["dvc"]["repro_noop_median_s"] > 0
    assert res["figures"]["memory"]["serialize_n"]["peak_rss_kib"] > 0

    # Ingest and preprocess: peak RSS at N and 8N rows, throughput against the pyarrow baselines.
    ing, pre = res["figures"]["ingest"], res["figures"]["preprocess"]
    for fig in (ing, pre):
        assert fig["rows_8n"] == 8 * fig["rows_n"]
        for label in ("n", "8n"):
            run = fig[f"memory_{label}"]
            assert run["peak_rss_kib"] >= run["rss_before_kib"] > 0
            assert run["records"] == fig[f"rows_{label}"]
        assert fig["rss_ratio"] == round(
            fig["memory_8n"]["peak_rss_kib"] / fig["memory_n"]["peak_rss_kib"], 3
        )
        assert fig["dataops_rows_per_s"] > 0 and fig["ratio"] > 0
    assert ing["csv_bytes_8n"] > 7 * ing["csv_bytes_n"] > 0
    assert ing["read_csv_rows_per_s"] > 0 and pre["compute_rows_per_s"] > 0
    assert "pyarrow.compute" in pre["baseline"]
    assert res["ratios"]["rss_ingest_8n_vs_n"] == ing["rss_ratio"]
    assert res["ratios"]["rss_preprocess_8n_vs_n"] == pre["rss_ratio"]
    assert res["ratios"]["ingest_vs_read_csv"] == ing["ratio"]
    assert res["ratios"]["preprocess_vs_compute"] == pre["ratio"]

    _check_beam(res)

    md = (quick_results / "results.md").read_text()
    assert "| figure | measured | target | pass |" in md
    assert "Read small, shuffled (as training reads; no target)" in md
    assert md.count("\n| ") >= 16
    assert "| ingest CSV (" in md and "| preprocess (" in md
    assert "- Build on Beam (DirectRunner, worker processes)" in md
    assert "| serialize on Beam, small records, vs `WriteToTFRecord`" in md
    png = (quick_results / "ratios.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def _check_beam(res: dict) -> None:
    """The beam section: the build by the three engines on one CSV (size recorded), the same
    bytes from each, peak RSS per Beam worker at N and 8N, serialize against WriteToTFRecord."""
    fig = res["figures"]["beam"]
    assert fig["status"] == "ok"
    b = fig["build"]
    assert b["build_gb"] == fig["sizes"]["build_gb"] > 0
    assert b["csv_bytes"] > 0 and b["rows"] > 0
    assert b["ingest_engine"] in ("beam", "in_process")
    assert bool(b["note"]) == (b["ingest_engine"] == "in_process")
    assert b["same_bytes"] is True
    for engine in ("in_process", "beam_1", "beam_2"):
        assert b[f"{engine}_rows_per_s"] > 0
        for run in b["runs"][engine]:
            assert run["examples"] == b["rows"]
            assert set(run["stages"]) == {"ingest", "preprocess", "serialize"}
            assert run["driver_peak_rss_kib"] > 0
            # Beam runs its work in worker processes, and only there
            assert (run["worker_peak_rss_kib"] > 0) == (engine != "in_process")
            workers = run["stages"]["serialize"]["worker_processes"]
            assert workers == {"in_process": 0, "beam_1": 1, "beam_2": 2}[engine]
    assert "--direct_num_workers=2" in b["beam_options"]["beam_2"]
    m = fig["worker_rss"]
    assert m["rows_8n"] == b["rows"] and 0 < m["rows_n"] < m["rows_8n"]
    assert m["worker_peak_rss_kib_n"] > 0 and m["worker_peak_rss_kib_8n"] > 0
    assert m["ratio"] == round(m["worker_peak_rss_kib_8n"] / m["worker_peak_rss_kib_n"], 3)
    s = fig["serialize"]
    assert s["dataops_records_per_s"] > 0 and s["write_to_tfrecord_records_per_s"] > 0
    assert 200 <= s["bytes_per_record"] <= 320
    r = res["ratios"]
    assert r["beam_build_2_vs_1_workers"] == b["beam_2_vs_1"]
    assert r["beam_build_1_worker_time_vs_in_process"] == b["beam_1_time_vs_in_process"]
    assert r["rss_beam_worker_8n_vs_n"] == m["ratio"]
    assert r["beam_serialize_small_vs_write_to_tfrecord"] == s["ratio"]


@slow
def test_only_runs_one_section_and_keeps_the_others(quick_results: Path, tmp_path: Path):
    """`--only ingest` measures ingest again; every other figure is kept from the earlier
    results.json at --out, and the markdown says so."""
    earlier = json.loads((quick_results / "results.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps(earlier))
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--only", "ingest"]
        + ["--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["figures"]) == set(earlier["figures"])
    assert res["earlier_sections"] == sorted(set(earlier["figures"]) - {"ingest"})
    for name in res["earlier_sections"]:
        assert res["figures"][name] == earlier["figures"][name]
    assert res["sections_run"] == ["ingest"]
    assert "figures of an earlier run" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "3GB"])
def test_build_gb_must_be_a_positive_number(value: str):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--only", "beam", "--build-gb", value],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"argument --build-gb: a positive number of GB of CSV, got '{value}'" in proc.stderr
