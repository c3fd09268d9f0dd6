"""Preprocess memory is bounded: the peak RSS preprocess adds at 4N rows is within 1.3x of what
it adds at N, each measured in a fresh process (VmHWM reset after the imports, minus the RSS
then), over a snapshot that ingest wrote from a generated CSV (numeric, categorical, tokenized
text and a high-entropy text column, so the snapshot's bytes grow with N as real data's do).

Measured: 60 vs 57 MiB at 150k / 600k rows; with Parquet pre-buffering (the defect), 59 vs 109."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import REPO

pytestmark = pytest.mark.slow

N_ROWS = 150_000

_INGEST = """
import sys
from pathlib import Path
from dataops.config import IngestParams
from dataops.stages.ingest import run_ingest
root = Path(sys.argv[1])
params = IngestParams.model_validate({"sources": [{"name": "t", "format": "csv", "path": "t.csv"}]})
run_ingest(params, root, root / "snapshot")
"""

_RUN = """
import json, sys
from pathlib import Path
from dataops.config import PreprocessParams
from dataops.stages.preprocess import run_preprocess
def status(field):
    lines = open("/proc/self/status").read().split("\\n")
    return int(next(line for line in lines if line.startswith(field)).split()[1])
root = Path(sys.argv[1])
params = PreprocessParams.model_validate({
    "split": {"seed": 0, "ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}},
    "features": [
        {"name": "id", "kind": "key"},
        {"name": "x", "kind": "numeric", "standardize": True},
        {"name": "color", "kind": "categorical", "unknown": "oov"},
        {"name": "caption", "kind": "text", "tokenize": True, "max_vocab": 1000},
        {"name": "note", "kind": "text"},
    ],
})
base = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
    f.write("5")
result = run_preprocess(params, root / "snapshot", root / "preprocessed")
print(json.dumps({"added_kib": status("VmHWM:") - base, "rows": sum(result.num_examples.values())}))
"""

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rnd = random.Random(seed)
    words = [f"w{i}" for i in range(2000)]
    with open(path, "w") as f:
        f.write("id,x,color,caption,note\n")
        for i in range(rows):
            note = "".join(rnd.choices(_ALPHABET, k=96))
            caption = " ".join(rnd.choices(words, k=6))
            f.write(f"{i},{rnd.gauss(100, 5):.5f},c{rnd.randint(0, 49)},{caption},{note}\n")


def _python(code: str, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    return r.stdout


def peak_kib(root: Path, rows: int, seed: int) -> tuple[int, int]:
    root.mkdir()
    write_csv(root / "t.csv", rows, seed)
    _python(_INGEST, str(root))
    out = json.loads(_python(_RUN, str(root)).strip().splitlines()[-1])
    return out["added_kib"], out["rows"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_peak_rss_does_not_grow_with_input(tmp_path):
    hwm_small, got_small = peak_kib(tmp_path / "n", N_ROWS, 0)
    hwm_big, got_big = peak_kib(tmp_path / "4n", 4 * N_ROWS, 1)
    assert (got_small, got_big) == (N_ROWS, 4 * N_ROWS)
    assert hwm_big <= 1.3 * hwm_small, (
        f"preprocess added {hwm_big / 1024:.0f} MiB of peak RSS at {4 * N_ROWS} rows vs "
        f"{hwm_small / 1024:.0f} MiB at {N_ROWS}"
    )
