"""examples/train_keras.py trains for one epoch on the small dataset with model.fit(dataops.load(...))."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from dataops.loader import Loader
from tests.support.project import REPO


def run_example(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, str(REPO / "examples" / "train_keras.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # Keras model.fit, ~10 s
def test_train_keras_one_epoch_and_resume(small_tfrecords, tmp_path):
    n = Loader(small_tfrecords, "train").num_examples
    out = run_example(
        "--data", str(small_tfrecords), "--batch-size", "32", "--state", str(tmp_path / "s.json")
    )
    assert out["train_batches"] == math.ceil(n / 32)
    assert math.isfinite(out["loss"]) and 0 <= out["accuracy"] <= 1 and "val_loss" in out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert (saved["epoch"], saved["position"]) == (1, 0)  # the callback saw the whole epoch

    # Resume mid-epoch from a saved state: Keras gets exactly the batches not yet seen.
    loader = Loader(
        small_tfrecords, "train", batch_size=32, shuffle=True, seed=0, supervised=("image", "label")
    )
    (tmp_path / "mid.json").write_text(loader.state_after(3).to_json())
    out = run_example(
        "--data", str(small_tfrecords), "--batch-size", "32", "--state", str(tmp_path / "mid.json")
    )
    assert out["train_batches"] == math.ceil(n / 32) - 3
