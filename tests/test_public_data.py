"""Public datasets bundled in PyPI packages, every stored value checked against pandas/NumPy.

The files come from the installed palmerpenguins and vega_datasets packages (nothing is
downloaded); they go through ingest -> preprocess -> serialize -> validate, and every stored
value, read back with `dataops.load`, is compared with an independent computation.

Exactness: the stored floats are `float32` of a float64 computation, so they are compared bit for
bit with `np.float32((x - mean) / std)` (float64, the order of `dataops/features/numeric.py`).
The fitted mean and std are compared bit for bit with NumPy (`np.mean`, `sqrt(np.var)`, which
is what numeric.py's two-pass moments equal for fewer than 4096 rows, one block), and with
pandas (`Series.mean`, `Series.std(ddof=0)`) to a relative 1e-12 only: pandas sums in its own
order, so its last bits may differ. CSV numbers are parsed by Python's `float`
(correctly rounded, as Arrow's cast is), JSON by `json`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import palmerpenguins
import pandas as pd
import vega_datasets

import dataops
from dataops.config import parse_params
from dataops.metadata import read_metadata
from dataops.stages.ingest import read_manifest
from dataops.stages.pipeline import PipelinePaths, run_pipeline
from dataops.stages.preprocess import read_state
from dataops.stages.split_assign import assign_splits

RATIOS = {"train": 0.7, "validation": 0.15, "test": 0.15}
SPLITS = list(RATIOS)
PENGUINS = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
VEGA = Path(vega_datasets.__file__).parent / "_data"
CARS = VEGA / "cars.json"
SEATTLE = VEGA / "seattle-weather.csv"


def build(root: Path, file: Path, source: dict, key: str | None, features: list[dict], **ingest):
    """Copy the bundled `file` into the project `root` and run the real stages on it."""
    shutil.copy(file, root / file.name)
    data = {
        "dataset": {"name": file.stem.replace("-", "_")},
        "ingest": {"key": key, "sources": [{**source, "path": file.name}], **ingest},
        "preprocess": {"split": {"seed": 0, "ratios": RATIOS}, "features": features},
        "validate": {"min_examples": {"train": 100, "validation": 10, "test": 10}},
    }
    run_pipeline(parse_params(data), root, sample=False)
    return PipelinePaths(root)


def read_back(paths: PipelinePaths) -> dict[str, dict[str, np.ndarray]]:
    """Every stored value of every split, as NumPy arrays, through `dataops.load`."""
    out = {}
    for split in SPLITS:
        batches = list(
            dataops.load(str(paths.tfrecords), split, batch_size=100_000).as_numpy_iterator()
        )
        assert len(batches) == 1, split
        out[split] = dict(batches[0])
    return out


def stored_state(paths: PipelinePaths) -> dict:
    """The fitted state (vocabularies, moments) of preprocess; it skipped nothing."""
    written = read_state(paths.preprocessed)
    assert written.skipped == {}
    return written.state


def read_csv(path: Path, numbers: tuple[str, ...]) -> pd.DataFrame:
    """The CSV as text (NA tokens as missing), its number columns parsed by Python's `float`
    (correctly rounded, as Arrow's cast is): independent of both pandas' and Arrow's parsers."""
    df = pd.read_csv(path, dtype=str, na_values=["", "NA"], keep_default_na=False)
    for c in numbers:
        df[c] = [np.nan if pd.isna(v) else float(v) for v in df[c]]
    return df


def texts(a: np.ndarray) -> list[str]:
    return [b.decode() for b in a]


def check_counts(paths: PipelinePaths, df: pd.DataFrame, split: np.ndarray) -> None:
    """Nothing dropped: rows read = written + skipped, skipped = 0, and per split counts."""
    counts = read_manifest(paths.snapshot).to_json()["counts"]
    (source,) = counts["sources"].values()
    assert (
        source["rows_read"]
        == len(df)
        == source["rows_joined"] + sum(source["rows_skipped"].values())
    )
    assert sum(source["rows_skipped"].values()) == 0
    examples = counts["examples"]
    assert examples["read"] == len(df) == examples["written"] + sum(examples["skipped"].values())
    expected = {s: int((split == i).sum()) for i, s in enumerate(SPLITS)}
    assert read_metadata(paths.tfrecords).num_examples == expected


def check_numeric(name: str, got: dict, rows: dict, train: pd.Series, state: dict):
    """`got[split][name]` (impute: mean, standardize) against the float64 computation of
    numeric.py, in its order (impute, subtract the mean, divide by the std), then float32."""
    x = train.dropna().to_numpy(np.float64)
    mean, std = np.mean(x), math.sqrt(np.var(x))
    assert (state["count"], state["mean"], state["std"]) == (len(x), mean, std), name
    assert math.isclose(state["mean"], train.mean(), rel_tol=1e-12), name  # pandas: own sum order
    assert math.isclose(state["std"], train.std(ddof=0), rel_tol=1e-12), name
    for split, col in rows.items():
        v = col.to_numpy(np.float64)
        v = np.where(np.isnan(v), mean, v)  # impute: mean
        expected = ((v - mean) / std).astype(np.float32)
        assert got[split][name].dtype == np.float32
        np.testing.assert_array_equal(got[split][name], expected, err_msg=f"{name} {split}")


def check_categorical(name: str, got: dict, rows: dict, train: pd.Series, state: dict):
    vocab = sorted(train.dropna().unique())
    assert state["vocabulary"] == vocab, name
    ids = {v: i for i, v in enumerate(vocab)}
    for split, col in rows.items():
        expected = [len(vocab) if pd.isna(v) else ids.get(v, len(vocab)) for v in col]
        assert got[split][name].dtype == np.int64
        assert got[split][name].tolist() == expected, f"{name} {split}"


def by_split(df: pd.DataFrame, split: np.ndarray) -> dict[str, pd.DataFrame]:
    return {s: df[split == i] for i, s in enumerate(SPLITS)}


def test_palmer_penguins_keyless_with_real_na_values(tmp_path):
    paths = build(
        tmp_path,
        PENGUINS,
        {"name": "penguins", "format": "csv", "null_values": ["", "NA"]},
        None,
        [
            {"kind": "key", "name": "key"},
            {"kind": "categorical", "name": "species", "unknown": "error"},
            {"kind": "categorical", "name": "island"},
            *(
                {"kind": "numeric", "name": c, "impute": "mean", "standardize": True}
                for c in ("bill_length_mm", "flipper_length_mm", "body_mass_g")
            ),
            {"kind": "categorical", "name": "sex", "missing": "oov"},
            {"kind": "numeric", "name": "year", "dtype": "int64"},
        ],
    )
    df = read_csv(PENGUINS, ("bill_length_mm", "flipper_length_mm", "body_mass_g"))
    df["year"] = df["year"].astype(np.int64)
    assert df.isna().sum().sum() == 19  # the real missing values: 2 rows of numbers, 11 sexes
    keys = [f"penguins:{i}" for i in range(len(df))]  # the documented keyless key
    split = assign_splits(keys, RATIOS, 0)
    check_counts(paths, df, split)
    got, state = read_back(paths), stored_state(paths)
    df["key"] = keys
    parts = by_split(df, split)
    for s, part in parts.items():
        assert texts(got[s]["key"]) == part["key"].tolist(), s  # rows in source order
        assert got[s]["year"].dtype == np.int64
        assert got[s]["year"].tolist() == part["year"].tolist()
    train = parts["train"]
    for c in ("species", "island", "sex"):
        check_categorical(c, got, {s: p[c] for s, p in parts.items()}, train[c], state[c])
    for c in ("bill_length_mm", "flipper_length_mm", "body_mass_g"):
        check_numeric(c, got, {s: p[c] for s, p in parts.items()}, train[c], state[c])
    assert got["train"]["sex"].tolist().count(2) == train["sex"].isna().sum() > 0  # missing: oov


def test_vega_cars_json_array_with_nulls_and_mixed_ints_and_floats(tmp_path):
    numbers = ("Miles_per_Gallon", "Displacement", "Horsepower", "Acceleration")
    paths = build(
        tmp_path,
        CARS,
        {"name": "cars", "format": "json"},
        None,
        [
            {"kind": "key", "name": "key"},
            {"kind": "key", "name": "Name"},
            *(
                {"kind": "numeric", "name": c, "impute": "mean", "standardize": True}
                for c in numbers
            ),
            {"kind": "numeric", "name": "Cylinders", "dtype": "int64"},
            {"kind": "numeric", "name": "Weight_in_lbs", "dtype": "int64"},
            {"kind": "categorical", "name": "Year"},
            {"kind": "categorical", "name": "Origin"},
        ],
        batch_rows=100,  # the case: 139 of 406 Miles_per_Gallon truncated at 100 rows
    )
    records = json.loads(CARS.read_text(encoding="utf-8"))
    df = pd.DataFrame.from_records(records)  # no dtype inference beyond json's own
    fractional = sum(isinstance(r["Miles_per_Gallon"], float) for r in records)
    assert fractional == 139 and df["Miles_per_Gallon"].isna().sum() == 8
    keys = [f"cars:{i}" for i in range(len(df))]
    split = assign_splits(keys, RATIOS, 0)
    check_counts(paths, df, split)
    got, state = read_back(paths), stored_state(paths)
    df["key"] = keys
    parts = by_split(df, split)
    for s, part in parts.items():
        assert texts(got[s]["key"]) == part["key"].tolist(), s
        assert texts(got[s]["Name"]) == part["Name"].tolist(), s
        for c in ("Cylinders", "Weight_in_lbs"):
            assert got[s][c].dtype == np.int64
            assert got[s][c].tolist() == part[c].tolist(), f"{c} {s}"
    train = parts["train"]
    for c in ("Year", "Origin"):
        check_categorical(c, got, {s: p[c] for s, p in parts.items()}, train[c], state[c])
    for c in numbers:
        rows = {s: p[c].astype(np.float64) for s, p in parts.items()}
        check_numeric(c, got, rows, train[c].astype(np.float64), state[c])
    stored_mpg = np.concatenate([got[s]["Miles_per_Gallon"] for s in SPLITS])
    assert len(np.unique(stored_mpg)) > len(np.unique(np.round(stored_mpg, 0)))  # not truncated


def test_vega_seattle_weather_keyed_by_date(tmp_path):
    numbers = ("precipitation", "temp_max", "temp_min", "wind")
    paths = build(
        tmp_path,
        SEATTLE,
        {"name": "weather", "format": "csv"},
        "date",
        [
            {"kind": "key", "name": "date"},
            *(
                {"kind": "numeric", "name": c, "impute": "mean", "standardize": True}
                for c in numbers
            ),
            {"kind": "categorical", "name": "weather", "unknown": "error"},
        ],
    )
    df = read_csv(SEATTLE, numbers)
    assert df["date"].is_unique and not df.isna().any().any()
    split = assign_splits(df["date"].tolist(), RATIOS, 0)
    check_counts(paths, df, split)
    got, state = read_back(paths), stored_state(paths)
    parts = by_split(df, split)
    for s, part in parts.items():  # join on the stored key: it must be the source order too
        assert texts(got[s]["date"]) == part["date"].tolist(), s
    train = parts["train"]
    check_categorical(
        "weather",
        got,
        {s: p["weather"] for s, p in parts.items()},
        train["weather"],
        state["weather"],
    )
    for c in numbers:
        check_numeric(c, got, {s: p[c] for s, p in parts.items()}, train[c], state[c])
