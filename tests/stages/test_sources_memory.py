"""Ingest memory is bounded: peak RSS at 4N bytes of CSV is within 1.3x of the peak at N,
each measured in a fresh process (VmHWM): one source (streamed) and two sources (the join,
with partitions small enough that both sizes are partitioned)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import REPO

pytestmark = pytest.mark.slow

N_MB = 24
PARTITION_BYTES = 4 << 20

_RUN = """
import json, sys
from pathlib import Path
from dataops.config import IngestParams
from dataops.stages.ingest import run_ingest
root = Path(sys.argv[1])
sources = [{"name": "t", "format": "csv", "path": "t.csv"}]
if sys.argv[3] == "2":
    sources = [
        {"name": "t", "format": "csv", "path": "t.csv", "columns": ["id", "a", "b"]},
        {"name": "u", "format": "csv", "path": "t.csv", "columns": ["id", "c", "name"]},
    ]
params = IngestParams.model_validate({"sources": sources, "partition_bytes": int(sys.argv[2])})
result = run_ingest(params, root, root / "out")
status = open("/proc/self/status").read().split("\\n")
hwm = next(line for line in status if line.startswith("VmHWM")).split()[1]
print(json.dumps({"hwm_kib": int(hwm), "rows": result.num_rows}))
"""


def write_csv(path: Path, mb: int, seed: int = 0) -> int:
    rnd = random.Random(seed)
    target, size, i = mb << 20, 0, 0
    with open(path, "w") as f:
        f.write("id,a,b,c,name\n")
        while size < target:
            line = (
                f"{i},{rnd.random():.6f},{rnd.randint(0, 10**6)},"
                f"{rnd.gauss(0, 1):.4f},n{rnd.randint(0, 999999):06d}\n"
            )
            f.write(line)
            size += len(line)
            i += 1
    return i


def peak_kib(root: Path, sources: int) -> tuple[int, int]:
    r = subprocess.run(
        [sys.executable, "-c", _RUN, str(root), str(PARTITION_BYTES), str(sources)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["hwm_kib"], out["rows"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sources", [1, 2])
def test_peak_rss_does_not_grow_with_input(tmp_path, sources):
    small, big = tmp_path / "n", tmp_path / "4n"
    small.mkdir()
    big.mkdir()
    rows_small = write_csv(small / "t.csv", N_MB)
    rows_big = write_csv(big / "t.csv", 4 * N_MB, seed=1)
    hwm_small, got_small = peak_kib(small, sources)
    hwm_big, got_big = peak_kib(big, sources)
    assert (got_small, got_big) == (rows_small, rows_big)
    assert hwm_big <= 1.3 * hwm_small, (
        f"peak RSS {hwm_big / 1024:.0f} MiB at {4 * N_MB} MB of CSV vs "
        f"{hwm_small / 1024:.0f} MiB at {N_MB} MB"
    )
