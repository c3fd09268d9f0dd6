"""`dataops export`: snapshot, Parquet and HDF5 hold exactly the dataset's examples; load reads the snapshot back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest

import dataops
from dataops.artifacts import ExportInfo, schema_path
from dataops.loader import Loader
from tests.support.project import run_cli


@pytest.fixture(scope="module")
def exports(small_tfrecords, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    for fmt, dest in (("snapshot", "snap"), ("parquet", "pq"), ("hdf5", "data.h5")):
        r = run_cli("export", str(small_tfrecords), "--format", fmt, "--out", str(out / dest))
        assert r.returncode == 0, r.stderr
    return out


def batches_equal(a, b) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if hasattr(a[k], "to_list"):
            assert a[k].to_list() == b[k].to_list(), k
        else:
            assert np.array_equal(a[k].numpy(), b[k].numpy()), k


@pytest.mark.slow  # the module's `exports` fixture: three CLI exports, > 10 s
@pytest.mark.parametrize(
    "opts",
    [
        dict(split="train", batch_size=64),
        dict(
            split="validation[10:50]+test[:20%]",
            batch_size=9,
            shuffle=True,
            seed=4,
            shuffle_buffer=25,
            repeat=2,
        ),
    ],
)
def test_snapshot_loads_like_the_tfrecords(small_tfrecords, exports, opts):
    split = opts.pop("split")
    want = list(dataops.load(small_tfrecords, split, **opts))
    got = list(dataops.load(exports / "snap", split, **opts))
    assert len(got) == len(want) > 0
    for a, b in zip(want, got, strict=True):
        batches_equal(a, b)
    # resuming works on a snapshot too
    ld = Loader(exports / "snap", split, **opts)
    rest = list(ld.dataset(state=ld.state_after(2)))
    for a, b in zip(want[2:], rest, strict=True):
        batches_equal(a, b)
    info = ExportInfo.read(exports / "snap" / "export.json")
    assert info.format == "snapshot" and (exports / "snap" / "metadata.json").is_file()
    jsonschema.validate(
        json.loads((exports / "snap" / "export.json").read_text()),
        json.loads(schema_path("export").read_text()),
    )


@pytest.mark.slow  # the module's `exports` fixture: three CLI exports, > 10 s
def test_parquet_holds_the_stored_values(small_dataset, exports):
    for split in ("train", "validation", "test"):
        got = pq.read_table(exports / "pq" / f"{split}.parquet")
        src = pq.read_table(small_dataset / "data" / "preprocessed" / f"{split}.parquet")
        assert got.column_names == src.column_names
        for name in src.column_names:
            assert got.column(name).to_pylist() == src.column(name).to_pylist(), (split, name)
        assert b"dataops.features" in got.schema.metadata
    assert json.loads((exports / "pq" / "metadata.json").read_text())["name"] == "sample"


@pytest.mark.slow  # the module's `exports` fixture: three CLI exports, > 10 s
def test_hdf5_holds_the_decoded_values(small_tfrecords, exports):
    import h5py

    with h5py.File(exports / "data.h5", "r") as h5:
        assert (
            json.loads(h5.attrs["metadata"])["fingerprint"]
            == Loader(small_tfrecords, "test").fingerprint
        )
        for split in ("validation", "test"):
            g = h5[split]
            want = {k: [] for k in g}
            for b in dataops.load(small_tfrecords, split, batch_size=50):
                for k in want:
                    v = b[k]
                    want[k].extend(v.to_list() if hasattr(v, "to_list") else list(v.numpy()))
            assert np.array_equal(g["image"][:], np.stack(want["image"]))
            assert g["image"].dtype == np.uint8 and g["image"].shape[1:] == (32, 32, 3)
            assert list(g["id"].asstr()[:]) == [x.decode() for x in want["id"]]
            assert np.array_equal(g["weight"][:], np.array(want["weight"], np.float32))
            assert [list(x) for x in g["clicks"][:]] == want["clicks"]
    assert (exports / "data.h5.metadata.json").is_file()


def test_export_errors(small_tfrecords, tmp_path):
    r = run_cli("export", str(small_tfrecords), "--format", "csv", "--out", str(tmp_path / "x"))
    assert (
        r.returncode == 2
        and "'csv' is not one of 'snapshot', 'parquet', 'hdf5'" in r.stderr  # checked by the parser
    )
    r = run_cli(
        "export", str(tmp_path / "missing"), "--format", "parquet", "--out", str(tmp_path / "y")
    )
    assert r.returncode == 1 and "missing/metadata.json: not found" in r.stderr
    assert not (tmp_path / "y").exists()
