"""The library install: the built wheel, in a clean venv with only its core dependencies (no
extra), imports `dataops.load` and reads a dataset.

The wheel requires `tensorflow`; this test installs `tensorflow-cpu` at the version running
here in its place (the same module, the substitution the app environment makes through uv's
override), so it needs no second 600 MB download. Every other core requirement is installed
from the wheel's own metadata, so a missing declaration fails here.
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.project import REPO

UV = ["bash", str(REPO / "scripts" / "uv.sh")]

pytestmark = pytest.mark.slow

CHECK = """
import importlib.util, sys
import dataops
for absent in ("airflow", "dvc", "typer", "PIL", "isal", "structlog", "ruamel"):
    assert importlib.util.find_spec(absent) is None, f"{absent} is installed without an extra"
rows = []
for batch in dataops.load(sys.argv[1], "train", batch_size=2):
    rows += batch["label"].numpy().tolist()
print("labels", rows)
"""


def _run(*args: str, **kw) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, **kw)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _core_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(name).decode())
    return [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]


def test_wheel_loads_with_core_dependencies_only(tmp_path):
    import tensorflow as tf

    _run(*UV, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(REPO))
    (wheel,) = (tmp_path / "dist").glob("dataops-*.whl")
    core = _core_requirements(wheel)
    names = sorted(r.split(">")[0].split("=")[0].split("<")[0].strip() for r in core)
    assert names == ["crc32c", "numpy", "pyarrow", "pydantic", "pyyaml", "tensorflow"]
    py = tmp_path / "venv" / "bin" / "python"
    _run(*UV, "venv", "--python", sys.executable, str(tmp_path / "venv"))
    reqs = [r for r in core if not r.startswith("tensorflow")]
    reqs.append(f"tensorflow-cpu=={tf.__version__}")
    _run(*UV, "pip", "install", "--python", str(py), *reqs)
    _run(*UV, "pip", "install", "--python", str(py), "--no-deps", str(wheel))
    out = _run(
        str(py), "-c", CHECK, str(REPO / "tests" / "golden"), cwd=tmp_path
    )  # cwd: not the repo, so `dataops` comes from the wheel
    assert out.strip().splitlines()[-1] == "labels [0, 2, 1]"
    cli = subprocess.run(
        [str(py.parent / "dataops"), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert cli.returncode == 2
    assert "the command line needs the pipeline extra: pip install 'dataops[pipeline]'" in (
        cli.stderr
    )
