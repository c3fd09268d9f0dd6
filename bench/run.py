"""`make bench`: dataops against the common TensorFlow/DVC/Airflow baselines, as side-by-side ratios.

The machine is shared and noisy, so every figure is a ratio of two things timed in the same
run, in alternating repetitions (the best of each side is kept for ratios, the median for the
DVC and Airflow times), never an absolute time compared across
runs. The data is generated here at two sizes, N and 8N. Writes `results.json` (every figure,
ratio, target and the versions), `results.md` (a table) and `ratios.png` (a chart).

    python bench/run.py            # full run (a few minutes; ingest/preprocess at ~1.1 GB of CSV)
    python bench/run.py --quick    # small sizes, one repetition: under two minutes
    python bench/run.py --only ingest --only preprocess   # some sections; the others' figures
                                   # are kept from the results.json already at --out
    python bench/run.py --only beam --build-gb 0.3   # the Beam section on 0.3 GB of CSV
                                   # (default 3 GB: two to three hours on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataops.metadata import FeatureInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from bench import beam  # noqa: E402  (the Beam section; imports nothing heavy)

SCHEMA_VERSION = 1
READ_BATCH = 256
SHUFFLE_BUFFER = 10_000


@dataclass(frozen=True)
class Sizes:
    """Rows per record kind (N; the memory section also uses 8N) and repetitions."""

    small: int
    image: int
    reps: int
    dvc_examples: int
    dvc_reps: int
    small_batch_rows: int = 8192
    image_batch_rows: int = 1024
    csv_rows: int = 2_500_000  # ingest/preprocess N (~135 MB of CSV; 8N ~1.1 GB)
    pipeline_reps: int = 3


FULL = Sizes(small=65536, image=8192, reps=5, dvc_examples=2000, dvc_reps=3)
QUICK = Sizes(
    small=8192,
    image=512,
    reps=1,
    dvc_examples=300,
    dvc_reps=1,
    image_batch_rows=256,
    csv_rows=20_000,
    pipeline_reps=1,
)


@dataclass(frozen=True)
class Target:
    """A target on one figure of `results.json`."""

    name: str
    label: str
    op: str  # ">=" or "<="
    threshold: float
    unit: str  # "x" (ratio) or "s"


TARGETS = [
    Target(
        "serialize_small_vs_loop", "serialize, small records, vs per-example loop", ">=", 8.0, "x"
    ),
    Target(
        "serialize_image_vs_loop", "serialize, image records, vs per-example loop", ">=", 1.0, "x"
    ),
    Target(
        "read_small_vs_parse_single",
        "read, small records, vs per-record parse pipeline",
        ">=",
        15.0,
        "x",
    ),
    Target("read_image_vs_raw", "read, image records, vs raw pass over the shards", ">=", 0.5, "x"),
    Target(
        "gzip_write_vs_none", "GZIP write vs uncompressed write (small records)", ">=", 0.5, "x"
    ),
    Target("rss_serialize_8n_vs_n", "peak RSS of serialize, 8N vs N", "<=", 1.2, "x"),
    Target("rss_load_8n_vs_n", "peak RSS of a full load pass, 8N vs N", "<=", 1.2, "x"),
    Target("rss_ingest_8n_vs_n", "peak RSS of ingest (CSV), 8N vs N", "<=", 1.2, "x"),
    Target("rss_preprocess_8n_vs_n", "peak RSS of preprocess, 8N vs N", "<=", 1.2, "x"),
    Target(
        "ingest_vs_read_csv", "ingest (CSV) vs `pyarrow.csv.read_csv` of the file", ">=", 0.5, "x"
    ),
    Target(
        "preprocess_vs_compute",
        "preprocess vs a plain `pyarrow.compute` pass (standardize, dictionary-encode)",
        ">=",
        0.5,
        "x",
    ),
    Target("dvc_repro_noop_s", "`dvc repro`, nothing changed", "<=", 2.0, "s"),
    Target(
        "dvc_push_vs_one_file",
        "`dvc push` of the dataset vs the same bytes as one file",
        "<=",
        1.5,
        "x",
    ),
    Target(
        "dvc_pull_vs_one_file",
        "`dvc pull` of the dataset vs the same bytes as one file",
        "<=",
        1.5,
        "x",
    ),
    Target("dag_import_s", "DAG file import (`dags/dataset_pipeline.py`)", "<=", 0.3, "s"),
    *(Target(*t) for t in beam.TARGETS),
]


SECTIONS = ["serialize", "read", "gzip", "memory", "ingest", "preprocess", "dvc", "airflow", "beam"]


class NotAvailable(Exception):
    """A compared component does not exist yet (the figure is reported as not available)."""


# --- data ----------------------------------------------------------------------------------


def _feature(
    name: str, kind: str, dtype: str, shape: list[int | None], encoding: str = "none"
) -> FeatureInfo:
    from dataops.metadata import FeatureInfo

    return FeatureInfo.model_validate(
        {"name": name, "kind": kind, "dtype": dtype, "shape": shape, "encoding": encoding}
    )


def make_preprocessed(kind: str, n: int, out: Path, seed: int = 0, row_group: int = 4096) -> Path:
    """A preprocessed directory (`train.parquet` + `state.json`) as the preprocess stage writes it.

    small: two int64 scalars, a float32 vector of 32, a short string, a variable-length int64
    list (about 250 bytes per Example). image: a float32 32x32x3 image (pixel/255) and an int64
    label (about 12 KB). Row groups of `row_group` rows (preprocess writes `batch_rows`).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataops.artifacts import PreprocessState, SplitCount, StateParams
    from dataops.stages.preprocess import STATE_FILE

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if kind == "small":
        lens = rng.integers(0, 16, n)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lens, out=offsets[1:])
        words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
        table = pa.table(
            {
                "id": pa.array(np.arange(n, dtype=np.int64)),
                "label": pa.array(rng.integers(0, 10, n)),
                "vec": pa.FixedSizeListArray.from_arrays(
                    pa.array(rng.standard_normal(n * 32).astype(np.float32)), 32
                ),
                "name": pa.array([f"{words[i % 8]}-{i:07d}" for i in range(n)], pa.string()),
                "tokens": pa.ListArray.from_arrays(
                    pa.array(offsets), pa.array(rng.integers(0, 30000, int(lens.sum())), pa.int64())
                ),
            }
        )
        features = [
            _feature("id", "tensor", "int64", []),
            _feature("label", "tensor", "int64", []),
            _feature("vec", "tensor", "float32", [32]),
            _feature("name", "text", "string", [], "utf-8"),
            _feature("tokens", "sequence", "int64", [None]),
        ]
    elif kind == "image":
        pixels = rng.integers(0, 256, n * 3072, dtype=np.uint8).astype(np.float32) / np.float32(255)
        table = pa.table(
            {
                "image": pa.FixedSizeListArray.from_arrays(pa.array(pixels), 3072),
                "label": pa.array(rng.integers(0, 10, n)),
            }
        )
        features = [
            _feature("image", "tensor", "float32", [32, 32, 3]),
            _feature("label", "tensor", "int64", []),
        ]
    else:
        raise ValueError(f"unknown record kind {kind!r}")
    pq.write_table(
        table,
        out / "train.parquet",
        compression="zstd",
        use_dictionary=False,
        row_group_size=row_group,
    )
    PreprocessState(
        features=features,
        state={},
        splits=[SplitCount(name="train", num_examples=n)],
        skipped={},
        inputs_fingerprint=f"bench-{kind}-{n}-{seed}",
        inputs={},
        params=StateParams(ingest={}, preprocess={}),
    ).write(out / STATE_FILE)
    return out


# --- timing helpers ------------------------------------------------------------------------


def alternate(
    fns: dict[str, Callable[[], Any]], reps: int, warmup: bool = True
) -> dict[str, list[float]]:
    """Run each function once untimed (imports, caches), then `reps` times alternating their
    order; return the wall times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    return times


def med(xs: list[float]) -> float:
    """For the absolute times (DVC, Airflow): the median, the conservative choice."""
    return statistics.median(xs)


def best(xs: list[float]) -> float:
    """For throughput and ratios: the best repetition of each side (timeit's convention).
    On a shared machine the slow repetitions are other tenants' work, and they hit the
    two sides of a ratio unevenly; every repetition is kept in results.json."""
    return min(xs)


# --- serialize -----------------------------------------------------------------------------


def dataops_serialize(pre: Path, out: Path, batch_rows: int, compression: str = "none") -> Any:
    from dataops.config import SerializeParams
    from dataops.stages.serialize import run_serialize

    return run_serialize(
        SerializeParams(batch_rows=batch_rows, compression=compression), "bench", pre, out
    )


def loop_serialize(pre: Path, out_file: Path, batch_rows: int, compression: str = "none") -> int:
    """The common habit: one `tf.train.Example` per row from Python values, one write each."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    from dataops.stages.preprocess import read_state

    features = read_state(pre).features
    options = tf.io.TFRecordOptions(compression_type="GZIP") if compression == "gzip" else None
    count = 0
    Feature, Int64List, FloatList, BytesList = (
        tf.train.Feature,
        tf.train.Int64List,
        tf.train.FloatList,
        tf.train.BytesList,
    )
    with tf.io.TFRecordWriter(str(out_file), options) as writer:
        for batch in pq.ParquetFile(pre / "train.parquet").iter_batches(
            batch_size=batch_rows, use_threads=False
        ):
            cols = []
            for f in features:
                arr = batch.column(f.name)
                if f.kind == "tensor" and f.shape:
                    width = 1
                    for d in f.shape:
                        width *= d
                    cols.append(arr.flatten().to_numpy().reshape(-1, width))
                else:
                    cols.append(arr.to_pylist())
            for i in range(batch.num_rows):
                feature = {}
                for f, col in zip(features, cols, strict=True):
                    v = col[i]
                    if f.dtype == "string":
                        feature[f.name] = Feature(bytes_list=BytesList(value=[v.encode()]))
                    elif f.dtype == "float32":
                        feature[f.name] = Feature(
                            float_list=FloatList(value=v.tolist() if f.shape else [v])
                        )
                    else:
                        vals = (
                            v.tolist()
                            if f.kind == "tensor" and f.shape
                            else (v if isinstance(v, list) else [v])
                        )
                        feature[f.name] = Feature(int64_list=Int64List(value=vals))
                writer.write(
                    tf.train.Example(
                        features=tf.train.Features(feature=feature)
                    ).SerializeToString()
                )
                count += 1
    return count


def bench_serialize(kind: str, pre: Path, work: Path, n: int, sizes: Sizes) -> dict[str, Any]:
    batch_rows = sizes.small_batch_rows if kind == "small" else sizes.image_batch_rows
    out_d, out_l = work / f"ser-{kind}-dataops", work / f"ser-{kind}-loop"
    out_l.mkdir(parents=True, exist_ok=True)
    loop_file = out_l / "loop.tfrecord"
    counts: dict[str, int] = {}

    def run_dataops() -> None:
        counts["dataops"] = sum(
            dataops_serialize(pre, out_d, batch_rows).metadata.num_examples.values()
        )

    def run_loop() -> None:
        counts["loop"] = loop_serialize(pre, loop_file, batch_rows)

    times = alternate({"dataops": run_dataops, "loop": run_loop}, sizes.reps)
    if counts["dataops"] != n or counts["loop"] != n:
        raise RuntimeError(f"serialize {kind}: wrote {counts} examples, expected {n} each")
    bytes_d = sum(p.stat().st_size for p in out_d.glob("*.tfrecord-*"))
    return {
        "rows": n,
        "batch_rows": batch_rows,
        "bytes_per_record": round(bytes_d / n, 1),
        "dataops_s": times["dataops"],
        "loop_s": times["loop"],
        "dataops_records_per_s": round(n / best(times["dataops"])),
        "loop_records_per_s": round(n / best(times["loop"])),
        "ratio": round(best(times["loop"]) / best(times["dataops"]), 3),
        "dataset": str(out_d),
    }


# --- read ----------------------------------------------------------------------------------


def shard_files(dataset: Path) -> list[str]:
    return sorted(str(p) for p in dataset.glob("*.tfrecord-*"))


def _rows(batch: Any) -> Any:
    first = (
        next(iter(batch.values()))
        if isinstance(batch, dict)
        else batch[0]
        if isinstance(batch, tuple)
        else batch
    )
    import tensorflow as tf

    if isinstance(first, tf.RaggedTensor):
        return first.nrows()
    if isinstance(first, tf.SparseTensor):
        return first.dense_shape[0]
    return tf.shape(first, out_type=tf.int64)[0]


_graph_counter: Any = None


def _count(ds: Any) -> int:
    """Consume `ds` the way a training step does: `get_next` inside a `tf.function` (one
    `reduce` over the whole pass), so no Python runs per batch."""
    global _graph_counter
    if _graph_counter is None:
        import tensorflow as tf

        @tf.function
        def count(d: Any) -> Any:
            return d.reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.cast(_rows(b), tf.int64))

        _graph_counter = count
    return int(_graph_counter(ds))


def _count_python(ds: Any) -> int:
    """Consume `ds` with a Python `for` loop (eager iteration: Python work per batch)."""
    return sum(int(_rows(b)) for b in ds)


def single_spec(features: list[dict[str, Any]]) -> dict[str, Any]:
    """The hand-written feature description of the common per-record pipeline."""
    import tensorflow as tf

    spec = {}
    for f in features:
        if f["dtype"] == "string" or f["encoding"] != "none":
            spec[f["name"]] = tf.io.FixedLenFeature([], tf.string)
        elif f["kind"] == "sequence":
            spec[f["name"]] = tf.io.VarLenFeature(
                tf.float32 if f["dtype"] == "float32" else tf.int64
            )
        else:
            spec[f["name"]] = tf.io.FixedLenFeature(
                f["shape"], tf.float32 if f["dtype"] == "float32" else tf.int64
            )
    return spec


def parse_single_pipeline(dataset: Path, compression: str = "") -> Any:
    """The common per-record pipeline: TFRecordDataset → map(parse_single_example) → batch."""
    import tensorflow as tf

    spec = single_spec(json.loads((dataset / "metadata.json").read_text())["features"])
    ds = tf.data.TFRecordDataset(shard_files(dataset), compression_type=compression)
    return ds.map(lambda r: tf.io.parse_single_example(r, spec)).batch(READ_BATCH)


def parse_single_shuffled_pipeline(dataset: Path) -> Any:
    """The common per-record pipeline for training: shuffled through a 10,000-record buffer."""
    import tensorflow as tf

    spec = single_spec(json.loads((dataset / "metadata.json").read_text())["features"])
    ds = tf.data.TFRecordDataset(shard_files(dataset)).shuffle(SHUFFLE_BUFFER, seed=0)
    return ds.map(lambda r: tf.io.parse_single_example(r, spec)).batch(READ_BATCH)


def raw_pipeline(dataset: Path, compression: str = "") -> Any:
    """The raw pass: TFRecordDataset in batches, nothing parsed."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(shard_files(dataset), compression_type=compression)
    return ds.batch(READ_BATCH)


def batch_parse_pipeline(dataset: Path, compression: str = "") -> Any:
    """For reference: batch first, then one `tf.io.parse_example` per batch (spec from metadata)."""
    import tensorflow as tf

    from dataops.metadata import read_metadata
    from dataops.tfrecord.spec import parse_spec

    spec = parse_spec(read_metadata(dataset))
    ds = tf.data.TFRecordDataset(shard_files(dataset), compression_type=compression)
    return ds.batch(READ_BATCH).map(lambda b: tf.io.parse_example(b, spec)).prefetch(1)


def _default_level() -> int:
    from dataops.config import SerializeParams

    return SerializeParams().level


def _default_deflate() -> str:
    from dataops.config import SerializeParams

    return SerializeParams().deflate


def load_fn() -> Callable[..., Any]:
    """`dataops.load`, or NotAvailable while it does not exist."""
    try:
        from dataops.loader import load
    except ImportError as err:
        raise NotAvailable(f"dataops.load is not importable ({err})") from None
    return load


def load_pipeline(dataset: Path) -> Any:
    return load_fn()(str(dataset), split="train", batch_size=READ_BATCH)


def load_shuffled_pipeline(dataset: Path) -> Any:
    return load_fn()(
        str(dataset),
        split="train",
        batch_size=READ_BATCH,
        shuffle=True,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
    )


def bench_read_shuffled(dataset: Path, n: int, sizes: Sizes) -> dict[str, Any]:
    """For reference (no target): shuffled reads, as training does them, in graph."""
    pipes = {
        "parse_single": parse_single_shuffled_pipeline(dataset),
        "load": load_shuffled_pipeline(dataset),
    }
    fns = {name: (lambda ds=ds: _count(ds)) for name, ds in pipes.items()}
    for name, fn in fns.items():
        if fn() != n:
            raise RuntimeError(f"shuffled read via {name}: wrong record count")
    times = alternate(fns, sizes.reps, warmup=False)
    return {
        "rows": n,
        "shuffle_buffer": SHUFFLE_BUFFER,
        **{f"{k}_s": v for k, v in times.items()},
        **{f"{k}_records_per_s": round(n / best(v)) for k, v in times.items()},
        "load_vs_parse_single": round(best(times["parse_single"]) / best(times["load"]), 3),
    }


def read_load(dataset: Path) -> int:
    return _count(load_pipeline(dataset))


def bench_read(kind: str, dataset: Path, n: int, sizes: Sizes) -> dict[str, Any]:
    """Each pipeline is built once; a timed pass is one full iteration of it. The target
    figures consume in graph (`_count`); the same passes with a Python for-loop consumer are
    recorded for reference (`python_loop`)."""
    pipes: dict[str, Any] = {
        "parse_single": parse_single_pipeline(dataset),
        "raw": raw_pipeline(dataset),
        "batch_parse": batch_parse_pipeline(dataset),
    }
    status = "ok"
    try:
        pipes["load"] = load_pipeline(dataset)
    except NotAvailable as err:
        status = f"not available: {err}"
    out: dict[str, Any] = {"rows": n, "batch_size": READ_BATCH, "status": status}
    for consumer, count in (("graph", _count), ("python_loop", _count_python)):
        fns = {name: (lambda ds=ds, count=count: count(ds)) for name, ds in pipes.items()}
        for name, fn in fns.items():  # warm-up (tracing, page cache) and a count check
            got = fn()
            if got != n:
                raise RuntimeError(f"read {kind} via {name}: {got} records, expected {n}")
        times = alternate(fns, sizes.reps, warmup=False)
        res: dict[str, Any] = {}
        for name, ts in times.items():
            res[f"{name}_s"] = ts
            res[f"{name}_records_per_s"] = round(n / best(ts))
        res["batch_parse_vs_parse_single"] = round(
            best(times["parse_single"]) / best(times["batch_parse"]), 3
        )
        res["batch_parse_vs_raw"] = round(best(times["raw"]) / best(times["batch_parse"]), 3)
        if "load" in times:
            res["load_vs_parse_single"] = round(
                best(times["parse_single"]) / best(times["load"]), 3
            )
            res["load_vs_raw"] = round(best(times["raw"]) / best(times["load"]), 3)
            res["load_vs_parse_single_median"] = round(
                med(times["parse_single"]) / med(times["load"]), 3
            )
        else:
            res["load_vs_parse_single"] = res["load_vs_raw"] = None
        if consumer == "graph":
            out.update(res)
        else:
            out["python_loop"] = res
    return out


# --- compression ---------------------------------------------------------------------------


def bench_gzip(kind: str, pre: Path, work: Path, n: int, sizes: Sizes) -> dict[str, Any]:
    import tensorflow as tf

    batch_rows = sizes.small_batch_rows if kind == "small" else sizes.image_batch_rows
    d_none, d_gzip = work / f"gz-{kind}-none", work / f"gz-{kind}-gzip"
    tf_dir = work / f"gz-{kind}-tf"
    tf_dir.mkdir(parents=True, exist_ok=True)
    write = alternate(
        {
            "none": lambda: dataops_serialize(pre, d_none, batch_rows, "none"),
            "gzip": lambda: dataops_serialize(pre, d_gzip, batch_rows, "gzip"),
        },
        sizes.reps,
    )
    # TensorFlow's own GZIP writer, relative to its uncompressed writer (for reference).
    tf_write = alternate(
        {
            "none": lambda: _tf_copy(shard_files(d_none), tf_dir / "none.tfrecord", None),
            "gzip": lambda: _tf_copy(
                shard_files(d_none),
                tf_dir / "gzip.tfrecord",
                tf.io.TFRecordOptions(compression_type="GZIP"),
            ),
        },
        sizes.reps,
    )
    pipes = {"raw_none": raw_pipeline(d_none), "raw_gzip": raw_pipeline(d_gzip, "GZIP")}
    try:
        pipes["load_none"] = load_pipeline(d_none)
        pipes["load_gzip"] = load_pipeline(d_gzip)
        status = "ok"
    except NotAvailable as err:
        status = f"load not available: {err}"
    read = alternate({k: (lambda ds=ds: _count(ds)) for k, ds in pipes.items()}, sizes.reps)
    size_none = sum(os.path.getsize(p) for p in shard_files(d_none))
    size_gzip = sum(os.path.getsize(p) for p in shard_files(d_gzip))
    out: dict[str, Any] = {
        "rows": n,
        "status": status,
        "deflate": _default_deflate(),
        "compression_level": _default_level(),
        "bytes_none": size_none,
        "bytes_gzip": size_gzip,
        "write_none_s": write["none"],
        "write_gzip_s": write["gzip"],
        "write_ratio": round(best(write["none"]) / best(write["gzip"]), 3),
        "tf_writer_gzip_ratio": round(best(tf_write["none"]) / best(tf_write["gzip"]), 3),
        "read_raw_ratio": round(best(read["raw_none"]) / best(read["raw_gzip"]), 3),
        "read_load_ratio": round(best(read["load_none"]) / best(read["load_gzip"]), 3)
        if "load_gzip" in read
        else None,
    }
    out.update(_deflate_speeds(d_none, best(write["none"])))
    return out


def _tf_copy(files: list[str], out: Path, options: Any) -> None:
    import tensorflow as tf

    from dataops.tfrecord.codec import iter_records

    with tf.io.TFRecordWriter(str(out), options) as w:
        for f in files:
            for rec in iter_records(f, check_crc=False):
                w.write(rec)


def _deflate_speeds(dataset: Path, write_none_s: float) -> dict[str, Any]:
    """Deflate speed of candidate compressors on the shard bytes, as a fraction of the
    uncompressed serialize speed (what the GZIP write ratio could be with each)."""
    import zlib

    data = b"".join(Path(p).read_bytes() for p in shard_files(dataset))
    out: dict[str, Any] = {}
    cands: dict[str, Callable[[bytes], bytes]] = {
        "zlib6": lambda b: zlib.compress(b, 6),
        "zlib1": lambda b: zlib.compress(b, 1),
    }
    try:
        from isal import isal_zlib

        cands["isal1"] = lambda b: isal_zlib.compress(b, 1)
        cands["isal2"] = lambda b: isal_zlib.compress(b, 2)
    except ImportError:
        pass
    for name, fn in cands.items():
        t = time.perf_counter()
        c = fn(data)
        dt = time.perf_counter() - t
        out[f"deflate_{name}_mb_per_s"] = round(len(data) / dt / 1e6, 1)
        out[f"deflate_{name}_size_ratio"] = round(len(c) / len(data), 3)
        # serialize(none) + compressing its output with this deflate, vs serialize(none)
        out[f"deflate_{name}_projected_write_ratio"] = round(write_none_s / (write_none_s + dt), 3)
    return out


# --- memory (subprocesses) -----------------------------------------------------------------


def _peak_rss_kib() -> int:
    """Peak resident set size of this process since the last reset (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _worker(args: argparse.Namespace) -> None:
    """Child process: run one operation per job, print the peak RSS of each (KiB) as JSON.

    Imports come first; the peak is reset before each job, so one process (one TensorFlow
    import) measures several sizes. Without a reset the parent starts one process per job.
    """
    jobs = json.loads(args.jobs)
    if args.worker == "load":
        import tensorflow  # noqa: F401

        load_fn()
    else:
        import pyarrow.csv  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        import dataops.stages.ingest  # noqa: F401
        import dataops.stages.preprocess  # noqa: F401
        import dataops.stages.serialize  # noqa: F401
    out = []
    for job in jobs:
        reset = _reset_peak_rss()
        if not reset and len(jobs) > 1:
            raise SystemExit("cannot reset the peak RSS here; run one job per process")
        before = _peak_rss_kib()
        t = time.perf_counter()
        if args.worker == "serialize":
            dataops_serialize(Path(job["pre"]), Path(job["out"]), job["batch_rows"])
            n = -1
        elif args.worker == "load":
            n = read_load(Path(job["dataset"]))
        elif args.worker == "ingest":
            n = dataops_ingest(Path(job["root"]), "t.csv", Path(job["out"]))
        elif args.worker == "preprocess":
            n = dataops_preprocess(Path(job["snapshot"]), Path(job["out"]))
        else:
            raise SystemExit(f"unknown worker {args.worker}")
        out.append(
            {
                "peak_rss_kib": _peak_rss_kib(),
                "rss_before_kib": before,
                "records": n,
                "peak_reset": reset,
                "s": round(time.perf_counter() - t, 3),
            }
        )
    print(json.dumps(out))


def _run_worker(kind: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def run(js: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, __file__, "--worker", kind, "--jobs", json.dumps(js)],
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )

    proc = run(jobs)
    if proc.returncode != 0 and "cannot reset the peak RSS" in proc.stderr:
        return [r for job in jobs for r in _run_worker(kind, [job])]
    if proc.returncode != 0:
        raise RuntimeError(
            f"{kind} worker failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(pre_n: Path, pre_8n: Path, work: Path, sizes: Sizes) -> dict[str, Any]:
    """Peak RSS of serialize and of a full `dataops.load` pass, image records at N and 8N."""
    out: dict[str, Any] = {
        "batch_rows": sizes.image_batch_rows,
        "kind": "image",
        "rows_n": sizes.image,
        "rows_8n": 8 * sizes.image,
    }
    sets = {"n": work / "mem-n", "8n": work / "mem-8n"}
    # One fresh process per size (no TensorFlow import, so cheap): nothing retained by a
    # previous run counts. The load pass shares one process (one TensorFlow import) and
    # resets the peak between sizes; the 8N pass runs second, so what the N pass retained
    # counts against it.
    ser = [
        _run_worker(
            "serialize",
            [{"pre": str(pre), "out": str(sets[label]), "batch_rows": sizes.image_batch_rows}],
        )[0]
        for label, pre in (("n", pre_n), ("8n", pre_8n))
    ]
    out["serialize_n"], out["serialize_8n"] = ser
    out["serialize_ratio"] = round(ser[1]["peak_rss_kib"] / ser[0]["peak_rss_kib"], 3)
    try:
        load_fn()
    except NotAvailable as err:
        out["load_status"] = f"not available: {err}"
        out["load_ratio"] = None
        return out
    loads = _run_worker("load", [{"dataset": str(sets["n"])}, {"dataset": str(sets["8n"])}])
    out["load_n"], out["load_8n"] = loads
    out["load_status"] = "ok"
    out["load_ratio"] = round(loads[1]["peak_rss_kib"] / loads[0]["peak_rss_kib"], 3)
    return out


# --- ingest and preprocess -----------------------------------------------------------------

_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
_CATEGORIES = 50
_NOTE_CHARS = 24


def make_csv(path: Path, rows: int, seed: int = 0, chunk: int = 500_000) -> int:
    """A CSV of `rows` rows, written in chunks (bounded memory): `id` (0..rows-1), `x` (float,
    N(100, 5), 5 decimals), `color` (50 categories), `count` (int), `note` (24 random letters,
    so the snapshot's bytes grow with the rows as real text does). About 55 bytes per row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(_ALPHABET, dtype=np.uint8)
    colors = np.array([f"c{i}" for i in range(_CATEGORIES)], dtype=object)
    options = pcsv.WriteOptions(quoting_style="none")
    writer = None
    with open(path, "wb") as sink:
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            notes = alphabet[rng.integers(0, len(alphabet), (m, _NOTE_CHARS))]
            table = pa.table(
                {
                    "id": pa.array(np.arange(start, start + m, dtype=np.int64)),
                    "x": pa.array(np.round(rng.normal(100.0, 5.0, m), 5)),
                    "color": pa.array(colors[rng.integers(0, _CATEGORIES, m)], pa.string()),
                    "count": pa.array(rng.integers(0, 1_000_000, m)),
                    "note": pa.array(
                        np.ascontiguousarray(notes).view(f"S{_NOTE_CHARS}").ravel()
                    ).cast(pa.string()),
                }
            )
            if writer is None:
                writer = pcsv.CSVWriter(sink, table.schema, write_options=options)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    return path.stat().st_size


def ingest_params(csv_name: str) -> Any:
    """The ingest params of the benchmark: one CSV source keyed by `id`, every other key at
    its default (batch_rows 4096, partition_bytes 256 MiB)."""
    from dataops.config import IngestParams

    return IngestParams.model_validate(
        {"key": "id", "sources": [{"name": "t", "format": "csv", "path": csv_name}]}
    )


def preprocess_params() -> Any:
    """Exactly the arithmetic of `compute_preprocess`: the key passed through, `x`
    standardized, `color` dictionary-encoded; splits 80/10/10 (which the baseline skips)."""
    from dataops.config import PreprocessParams

    return PreprocessParams.model_validate(
        {
            "split": {"seed": 0, "ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}},
            "features": [
                {"name": "id", "kind": "key"},
                {"name": "x", "kind": "numeric", "standardize": True},
                {"name": "color", "kind": "categorical", "unknown": "oov"},
            ],
        }
    )


def dataops_ingest(root: Path, csv_name: str, out: Path) -> int:
    from dataops.stages.ingest import run_ingest

    return run_ingest(ingest_params(csv_name), root, out).num_rows


def dataops_preprocess(snapshot: Path, out: Path) -> int:
    from dataops.stages.preprocess import run_preprocess

    return sum(run_preprocess(preprocess_params(), snapshot, out).num_examples.values())


def pyarrow_read_csv(path: Path) -> int:
    """The ingest baseline: `pyarrow.csv.read_csv(path)` with its defaults (multithreaded,
    the whole file in memory, no output written)."""
    import pyarrow.csv as pcsv

    return pcsv.read_csv(path).num_rows


def compute_preprocess(snapshot: Path, out_file: Path, batch_rows: int = 4096) -> int:
    """The preprocess baseline, plain `pyarrow.compute` over the same snapshot in the same
    batches (`ParquetFile(pre_buffer=False).iter_batches(4096, columns=[id, x, color])` of each part; the
    snapshot stores every CSV value as text, so `x` is cast to float64 in both passes).
    Pass 1: count, mean and variance (ddof 0) of `x` per batch (`pc.mean`, `pc.variance`),
    merged by Chan's formula; the distinct `color` values (`pc.unique`), sorted. Pass 2:
    `(x - mean) / std` as float32 (`pc.subtract`, `pc.divide`), `pc.index_in(color, vocab)`,
    written with `id` to one zstd Parquet file. No split assignment, no per-row checks, no
    messages, no state file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cols = ["id", "x", "color"]
    n, mean, m2, vocab = 0, 0.0, 0.0, set()
    for b in _snapshot_batches(snapshot, batch_rows, cols):
        x = b.column("x").cast(pa.float64())
        k = len(x) - x.null_count
        if k:
            bm, bv = pc.mean(x).as_py(), pc.variance(x, ddof=0).as_py()
            delta, total = bm - mean, n + k
            mean += delta * k / total
            m2 += bv * k + delta * delta * n * k / total
            n = total
        vocab.update(pc.unique(b.column("color")).to_pylist())
    std = (m2 / n) ** 0.5 if n else 1.0
    value_set = pa.array(sorted(v for v in vocab if v is not None), pa.string())
    rows = 0
    with pq.ParquetWriter(
        out_file,
        pa.schema([("id", pa.string()), ("x", pa.float32()), ("color", pa.int32())]),
        compression="zstd",
        use_dictionary=False,
    ) as writer:
        for b in _snapshot_batches(snapshot, batch_rows, cols):
            x = pc.divide(pc.subtract(b.column("x").cast(pa.float64()), mean), std)
            x = x.cast(pa.float32())
            color = pc.index_in(b.column("color"), value_set=value_set)
            writer.write_table(
                pa.table({"id": b.column("id"), "x": x, "color": color}),
                row_group_size=batch_rows,
            )
            rows += b.num_rows
    return rows


def _snapshot_batches(snapshot: Path, batch_rows: int, columns: list[str]) -> Any:
    """The batches of each part of the snapshot folder in turn, as a user reads Parquet files
    (`ParquetFile(pre_buffer=False).iter_batches`)."""
    import pyarrow.parquet as pq

    for path in sorted(snapshot.glob("snapshot-*-of-*.parquet")):
        yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(
            batch_size=batch_rows, columns=columns, use_threads=False
        )


def split_only(snapshot: Path, batch_rows: int = 4096) -> int:
    """What preprocess does and the baseline skips, alone: the split of every row, from the
    key column read in the same batches (`dataops.stages.split_assign.split_keys`: sha256 per key)."""

    from dataops.stages.split_assign import split_keys

    split = preprocess_params().split
    rows = 0
    for b in _snapshot_batches(snapshot, batch_rows, ["id"]):
        split_keys(b.column("id"), split.ratios, split.seed)
        rows += b.num_rows
    return rows


def _pipeline_inputs(work: Path, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """The generated CSV at N and 8N rows (made once per run): label -> rows, root, bytes."""
    out = {}
    for label, rows in (("n", sizes.csv_rows), ("8n", 8 * sizes.csv_rows)):
        root = work / f"csv-{label}"
        if not (root / "t.csv").exists():
            root.mkdir(parents=True, exist_ok=True)
            make_csv(root / "t.csv", rows, seed=len(label))
        out[label] = {"rows": rows, "root": root, "bytes": (root / "t.csv").stat().st_size}
    return out


def _memory_figures(fig: dict[str, Any], rows_8n: int) -> None:
    n, n8 = fig["memory_n"], fig["memory_8n"]
    fig["rss_ratio"] = round(n8["peak_rss_kib"] / n["peak_rss_kib"], 3)
    added_n = n["peak_rss_kib"] - n["rss_before_kib"]
    added_8n = n8["peak_rss_kib"] - n8["rss_before_kib"]
    fig["added_rss_ratio"] = round(added_8n / added_n, 3) if added_n > 0 else None
    fig["dataops_8n_rows_per_s"] = round(rows_8n / n8["s"])


def _timed(
    fns: dict[str, Callable[[], int]], rows: int, reps: int, what: str
) -> dict[str, list[float]]:
    """`alternate` without a warm-up (each run takes seconds; imports are done), checking
    that every side handled `rows` rows."""
    counts: dict[str, int] = {}

    def wrap(name: str, fn: Callable[[], int]) -> Callable[[], None]:
        def go() -> None:
            counts[name] = fn()

        return go

    times = alternate({k: wrap(k, f) for k, f in fns.items()}, reps, warmup=False)
    if any(c != rows for c in counts.values()):
        raise RuntimeError(f"{what}: handled {counts} rows, expected {rows} each")
    return times


def bench_ingest(work: Path, sizes: Sizes) -> dict[str, Any]:
    """Ingest of a CSV: peak RSS at N and 8N rows (one fresh process each; default params),
    and throughput at N against `pyarrow.csv.read_csv`, alternating."""
    import pyarrow.csv  # noqa: F401  (imports outside the timed region)

    import dataops.stages.ingest  # noqa: F401

    inputs = _pipeline_inputs(work, sizes)
    fig: dict[str, Any] = {
        "rows_n": inputs["n"]["rows"],
        "rows_8n": inputs["8n"]["rows"],
        "csv_bytes_n": inputs["n"]["bytes"],
        "csv_bytes_8n": inputs["8n"]["bytes"],
        "params": ingest_params("t.csv").model_dump(mode="json"),
    }
    for label, inp in inputs.items():
        (r,) = _run_worker(
            "ingest", [{"root": str(inp["root"]), "out": str(inp["root"] / "snapshot")}]
        )
        if r["records"] != inp["rows"]:
            raise RuntimeError(f"ingest {label}: {r['records']} rows, expected {inp['rows']}")
        fig[f"memory_{label}"] = r
    _memory_figures(fig, inputs["8n"]["rows"])
    root, rows = inputs["n"]["root"], inputs["n"]["rows"]
    t = _timed(
        {
            "dataops": lambda: dataops_ingest(root, "t.csv", work / "ingest-tp"),
            "read_csv": lambda: pyarrow_read_csv(root / "t.csv"),
        },
        rows,
        sizes.pipeline_reps,
        "ingest",
    )
    shutil.rmtree(work / "ingest-tp", ignore_errors=True)
    mb = inputs["n"]["bytes"] / 1e6
    fig.update(
        {
            "dataops_s": t["dataops"],
            "read_csv_s": t["read_csv"],
            "dataops_rows_per_s": round(rows / best(t["dataops"])),
            "read_csv_rows_per_s": round(rows / best(t["read_csv"])),
            "dataops_mb_per_s": round(mb / best(t["dataops"]), 1),
            "read_csv_mb_per_s": round(mb / best(t["read_csv"]), 1),
            "ratio": round(best(t["read_csv"]) / best(t["dataops"]), 3),
            # the shared machine's noise: the median of each side, and the load while timed
            "ratio_median": round(med(t["read_csv"]) / med(t["dataops"]), 3),
            "load_average": list(os.getloadavg()),
        }
    )
    return fig


def bench_preprocess(work: Path, sizes: Sizes) -> dict[str, Any]:
    """Preprocess of the ingested CSV: peak RSS at N and 8N rows (one fresh process each),
    and throughput at N against `compute_preprocess`, alternating."""
    import pyarrow.compute  # noqa: F401  (imports outside the timed region)

    import dataops.stages.preprocess  # noqa: F401

    inputs = _pipeline_inputs(work, sizes)
    for inp in inputs.values():  # when the ingest section did not run
        if not (inp["root"] / "snapshot").exists():
            dataops_ingest(inp["root"], "t.csv", inp["root"] / "snapshot")
    fig: dict[str, Any] = {
        "rows_n": inputs["n"]["rows"],
        "rows_8n": inputs["8n"]["rows"],
        "snapshot_bytes_8n": sum(
            p.stat().st_size for p in (inputs["8n"]["root"] / "snapshot").glob("*.parquet")
        ),
        "params": preprocess_params().model_dump(mode="json"),
        "baseline": " ".join((compute_preprocess.__doc__ or "").split()),
    }
    for label, inp in inputs.items():
        job = {"snapshot": str(inp["root"] / "snapshot"), "out": str(inp["root"] / "pre")}
        (r,) = _run_worker("preprocess", [job])
        if r["records"] != inp["rows"]:
            raise RuntimeError(f"preprocess {label}: {r['records']} rows, expected {inp['rows']}")
        fig[f"memory_{label}"] = r
    _memory_figures(fig, inputs["8n"]["rows"])
    shutil.rmtree(inputs["8n"]["root"], ignore_errors=True)  # ~2 GB not needed any more
    snapshot, rows = inputs["n"]["root"] / "snapshot", inputs["n"]["rows"]
    t = _timed(
        {
            "dataops": lambda: dataops_preprocess(snapshot, work / "pre-tp"),
            "compute": lambda: compute_preprocess(snapshot, work / "compute-tp.parquet"),
            "split": lambda: split_only(snapshot),
        },
        rows,
        sizes.pipeline_reps,
        "preprocess",
    )
    fig.update(
        {
            "dataops_s": t["dataops"],
            "compute_s": t["compute"],
            "dataops_rows_per_s": round(rows / best(t["dataops"])),
            "compute_rows_per_s": round(rows / best(t["compute"])),
            "ratio": round(best(t["compute"]) / best(t["dataops"]), 3),
            # the split assignment alone (key column read + sha256 per key), which the
            # baseline does not do: its share of preprocess's time
            "split_s": t["split"],
            "split_rows_per_s": round(rows / best(t["split"])),
            "split_share": round(best(t["split"]) / best(t["dataops"]), 3),
        }
    )
    return fig


# --- DVC -----------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {
        **os.environ,
        "PATH": path,
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


def _sh(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env=env or _env(), check=False
    )
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(args)}` in {cwd} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return dt


def bench_dvc(work: Path, sizes: Sizes) -> dict[str, Any]:
    """A temp git+DVC repo from the committed project files, small sample data, a temp remote."""
    import yaml

    repo, remote = work / "dvc-repo", work / "dvc-remote"
    repo.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    for p in ("data", ".dvcstore", "reports/runs"):
        shutil.rmtree(repo / p, ignore_errors=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["sample"]["num_examples"] = sizes.dvc_examples
    small = max(1, sizes.dvc_examples // 40)
    params["validate"]["min_examples"] = {"train": small * 8, "validation": small, "test": small}
    params["validate"]["class_balance"] = {
        "feature": "label",
        "min_fraction": 0.01,
        "max_fraction": 0.7,
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [str(Path(sys.executable).parent / "dvc")]
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    _sh([*git, "init", "-q"], repo)
    _sh([*git, "add", "-A"], repo)
    _sh([*git, "commit", "-q", "-m", "bench"], repo)
    first = _sh([*dvc, "repro"], repo)
    noop, startup = [], []
    for _ in range(max(2, sizes.dvc_reps)):  # alternating with DVC's bare CLI start-up, the floor
        noop.append(_sh([*dvc, "repro"], repo))
        startup.append(_sh([*dvc, "version"], repo))
    changed = []
    for r in range(sizes.dvc_reps):
        params["validate"]["class_balance"]["max_fraction"] = 0.7 + 0.01 * (r + 1)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        changed.append(_sh([*dvc, "repro"], repo))
    # The serialized dataset vs the same bytes as one file.
    files = sorted(p for p in (repo / "data" / "tfrecords").iterdir() if p.is_file())
    with open(repo / "onefile.bin", "wb") as one:
        for p in files:
            one.write(p.read_bytes())
    _sh([*dvc, "add", "onefile.bin"], repo)
    targets = {"dataset": "serialize", "one_file": "onefile.bin"}
    push: dict[str, list[float]] = {k: [] for k in targets}
    pull: dict[str, list[float]] = {k: [] for k in targets}
    trial = iter(range(1000))

    def fresh_remote() -> None:
        # A new, empty remote directory each time: DVC keeps an index of what a remote holds,
        # so emptying the same directory behind its back would make it skip the upload.
        _sh(
            [
                *dvc,
                "remote",
                "add",
                "--local",
                "-d",
                "-f",
                "bench",
                str(remote / f"r{next(trial)}"),
            ],
            repo,
        )

    for r in range(sizes.dvc_reps):
        order = list(targets) if r % 2 == 0 else list(targets)[::-1]
        for name in order:
            fresh_remote()
            push[name].append(_sh([*dvc, "push", targets[name]], repo))
    fresh_remote()
    for target in targets.values():  # the remote holds both for the pulls
        _sh([*dvc, "push", target], repo)
    for r in range(sizes.dvc_reps):
        order = list(targets) if r % 2 == 0 else list(targets)[::-1]
        for name in order:
            shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
            victim = repo / ("data/tfrecords" if name == "dataset" else "onefile.bin")
            shutil.rmtree(victim) if victim.is_dir() else victim.unlink()
            pull[name].append(_sh([*dvc, "pull", targets[name]], repo))
            if not victim.exists():
                raise RuntimeError(f"`dvc pull {targets[name]}` did not restore {victim}")
    return {
        "examples": sizes.dvc_examples,
        "dataset_files": len(files),
        "dataset_bytes": sum(p.stat().st_size for p in files),
        "first_repro_s": round(first, 3),
        "repro_noop_s": noop,
        "repro_noop_median_s": round(med(noop), 3),
        "dvc_version_s": startup,
        "dvc_version_median_s": round(med(startup), 3),
        "repro_validate_changed_s": changed,
        "repro_validate_changed_median_s": round(med(changed), 3),
        "push_dataset_s": push["dataset"],
        "push_one_file_s": push["one_file"],
        "pull_dataset_s": pull["dataset"],
        "pull_one_file_s": pull["one_file"],
        "push_ratio": round(best(push["dataset"]) / best(push["one_file"]), 3),
        "pull_ratio": round(best(pull["dataset"]) / best(pull["one_file"]), 3),
    }


# --- Airflow -------------------------------------------------------------------------------

_DAG_IMPORT = """
import importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow.sdk  # already loaded in Airflow's DAG processor
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dataset_pipeline_bench", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
t2 = time.perf_counter()
heavy = sorted(m for m in ("tensorflow", "pyarrow", "dvc.repo") if m in sys.modules)
print(json.dumps({"airflow_sdk_import_s": t1 - t0, "dag_file_s": t2 - t1, "heavy_modules_loaded": heavy}))
"""


def bench_airflow(work: Path, sizes: Sizes) -> dict[str, Any]:
    dag = ROOT / "dags" / "dataset_pipeline.py"
    if not dag.exists():
        return {"status": f"not available: {dag} does not exist"}
    home = work / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = _env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", DATAOPS_PROJECT_DIR=str(ROOT)
    )
    runs = []
    for _ in range(sizes.reps):
        proc = subprocess.run(
            [sys.executable, "-c", _DAG_IMPORT, str(dag)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        if proc.returncode != 0:
            return {
                "status": f"import failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}"
            }
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "status": "ok",
        "dag_file_s": [r["dag_file_s"] for r in runs],
        "dag_file_median_s": round(med([r["dag_file_s"] for r in runs]), 4),
        "airflow_sdk_import_median_s": round(med([r["airflow_sdk_import_s"] for r in runs]), 3),
        "heavy_modules_loaded": runs[-1]["heavy_modules_loaded"],
    }


# --- report --------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in (
        "tensorflow",
        "tensorflow-cpu",
        "protobuf",
        "dvc",
        "apache-airflow",
        "pyarrow",
        "numpy",
        "crc32c",
        "isal",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    out["python"] = platform.python_version()
    return out


def machine() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "load_average_start": list(os.getloadavg()),
    }


def evaluate(ratios: dict[str, float | None], notes: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for t in TARGETS:
        v = ratios.get(t.name)
        ok = None if v is None else (v >= t.threshold if t.op == ">=" else v <= t.threshold)
        rows.append({**asdict(t), "measured": v, "pass": ok, "note": notes.get(t.name, "")})
    return rows


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "not available"
    return f"{v:.2f} s" if unit == "s" else f"{v:.2f}×"


def _added_mib(run: dict[str, Any]) -> str:
    return f"{(run['peak_rss_kib'] - run['rss_before_kib']) / 1024:.0f}"


def write_markdown(path: Path, res: dict[str, Any]) -> None:
    m = res["machine"]
    lines = [
        f"Measured {'(quick mode) ' if res['quick'] else ''}on {m['cpu_count']} cores ({m['cpu_model']}), "
        f"load average {m['load_average_start'][0]:.2f} at start, {m['load_average_end'][0]:.2f} at end; "
        f"TensorFlow {res['versions'].get('tensorflow') or res['versions'].get('tensorflow-cpu')}, protobuf {res['versions']['protobuf']}, "
        f"DVC {res['versions']['dvc']}, Airflow {res['versions']['apache-airflow']}.",
        "",
        *(
            [
                f"Sections {', '.join(res['earlier_sections'])}: figures of an earlier run "
                "(this one ran only the others).",
                "",
            ]
            if res.get("earlier_sections")
            else []
        ),
        "| figure | measured | target | pass |",
        "|---|---|---|---|",
    ]
    for row in res["targets"]:
        unit = row["unit"]
        target = f"{row['op'].replace('>=', '≥').replace('<=', '≤')} {row['threshold']:g}{' s' if unit == 's' else '×'}"
        verdict = "—" if row["pass"] is None else ("yes" if row["pass"] else "**no**")
        note = f" ({row['note']})" if row["note"] else ""
        lines.append(
            f"| {row['label']}{note} | {_fmt(row['measured'], unit)} | {target} | {verdict} |"
        )
    f = res["figures"]
    lines += [
        "",
        "| throughput (records/s, best repetition) | dataops | baseline |",
        "|---|---|---|",
    ]
    for kind, s in f.get("serialize", {}).items():
        lines.append(
            f"| serialize {kind} ({s['bytes_per_record']:.0f} B/record, {s['rows']} rows) | {s['dataops_records_per_s']:,} | {s['loop_records_per_s']:,} (per-example loop) |"
        )
    for kind, r in f.get("read", {}).items():
        load = f"{r['load_records_per_s']:,}" if "load_records_per_s" in r else "not available"
        lines.append(
            f"| read {kind} | {load} | {r['parse_single_records_per_s']:,} (parse_single_example), {r['raw_records_per_s']:,} (raw pass), "
            f"{r['batch_parse_records_per_s']:,} (batch → parse_example, for reference) |"
        )
    if "ingest" in f:
        g = f["ingest"]
        lines.append(
            f"| ingest CSV ({g['rows_n']:,} rows, {g['csv_bytes_n'] / 1e6:.0f} MB) | {g['dataops_rows_per_s']:,} | "
            f"{g['read_csv_rows_per_s']:,} (`pyarrow.csv.read_csv`) |"
        )
    if "preprocess" in f:
        g = f["preprocess"]
        lines.append(
            f"| preprocess ({g['rows_n']:,} rows) | {g['dataops_rows_per_s']:,} | "
            f"{g['compute_rows_per_s']:,} (plain `pyarrow.compute`) |"
        )
    details = []
    for kind, r in f.get("read", {}).items():
        if r.get("load_vs_parse_single_median") is not None:
            details.append(
                f"Read {kind}: dataops.load vs the per-record pipeline from the medians instead of the best repetitions: "
                f"{r['load_vs_parse_single_median']:.2f}× (per-record pipeline passes: {', '.join(f'{t:.2f}' for t in r['parse_single_s'])} s; "
                f"dataops.load: {', '.join(f'{t * 1000:.0f}' for t in r['load_s'])} ms)."
            )
        py = r.get("python_loop") or {}
        if py.get("load_vs_parse_single") is not None:
            details.append(
                f"Read {kind}, consumed by a Python `for` loop instead of in graph (Python work per batch of {r['batch_size']}): "
                f"dataops.load {py['load_records_per_s']:,}/s, per-record pipeline {py['parse_single_records_per_s']:,}/s, "
                f"raw pass {py['raw_records_per_s']:,}/s: {py['load_vs_parse_single']:.2f}× the per-record pipeline, {py['load_vs_raw']:.2f}× the raw pass."
            )
    for kind, r in f.get("read_shuffled", {}).items():
        details.append(
            f"Read {kind}, shuffled (as training reads; no target): dataops.load(shuffle=True, shuffle_buffer={r['shuffle_buffer']:,}) "
            f"{r['load_records_per_s']:,}/s vs TFRecordDataset → shuffle({r['shuffle_buffer']:,}) → map(parse_single_example) → batch "
            f"{r['parse_single_records_per_s']:,}/s: {r['load_vs_parse_single']:.2f}×."
        )
    if "gzip" in f:
        g = f["gzip"]["small"]
        details.append(
            f"GZIP ({g.get('deflate', 'zlib')} level {g['compression_level']}): write {g['write_ratio']:.2f}× uncompressed, "
            f"files {g['bytes_gzip'] / g['bytes_none']:.2f}× the size; TensorFlow's own GZIP writer: {g['tf_writer_gzip_ratio']:.2f}×; "
            f"GZIP read: raw pass {g['read_raw_ratio']:.2f}×"
            + (f", dataops.load {g['read_load_ratio']:.2f}×" if g.get("read_load_ratio") else "")
            + f". Deflate alone on these bytes: zlib 6 {g.get('deflate_zlib6_mb_per_s')} MB/s (size {g.get('deflate_zlib6_size_ratio')}), "
            f"ISA-L 2 {g.get('deflate_isal2_mb_per_s')} MB/s (size {g.get('deflate_isal2_size_ratio')})."
        )
    if "memory" in f:
        m = f["memory"]
        line = f"Peak RSS, image records, batch_rows {m['batch_rows']}: serialize {m['serialize_n']['peak_rss_kib'] / 1024:.0f} MiB at {m['rows_n']} rows, {m['serialize_8n']['peak_rss_kib'] / 1024:.0f} MiB at {m['rows_8n']}"
        if m.get("load_n"):
            line += f"; load pass {m['load_n']['peak_rss_kib'] / 1024:.0f} MiB and {m['load_8n']['peak_rss_kib'] / 1024:.0f} MiB (TensorFlow included)"
        details.append(line + ".")
    if "ingest" in f:
        g = f["ingest"]
        details.append(
            f"Ingest, one CSV source ({g['rows_n']:,} rows, {g['csv_bytes_n'] / 1e6:.0f} MB, and {g['rows_8n']:,} rows, "
            f"{g['csv_bytes_8n'] / 1e6:.0f} MB; default params, partition_bytes {g['params']['partition_bytes'] >> 20} MiB): "
            f"peak RSS {g['memory_n']['peak_rss_kib'] / 1024:.0f} MiB at N, {g['memory_8n']['peak_rss_kib'] / 1024:.0f} MiB at 8N "
            f"(above the imports: {_added_mib(g['memory_n'])} and {_added_mib(g['memory_8n'])} MiB); "
            f"{g['dataops_mb_per_s']} MB/s ({g['dataops_rows_per_s']:,} rows/s) vs `pyarrow.csv.read_csv` "
            f"{g['read_csv_mb_per_s']} MB/s ({g['read_csv_rows_per_s']:,} rows/s), which only parses, multithreaded, "
            f"into memory; ingest also writes the zstd Parquet snapshot. At 8N: {g['dataops_8n_rows_per_s']:,} rows/s."
        )
    if "preprocess" in f:
        g = f["preprocess"]
        details.append(
            f"Preprocess of that snapshot (key, `x` standardized, `color` dictionary-encoded, 80/10/10 splits; "
            f"{g['rows_n']:,} and {g['rows_8n']:,} rows): peak RSS {g['memory_n']['peak_rss_kib'] / 1024:.0f} MiB at N, "
            f"{g['memory_8n']['peak_rss_kib'] / 1024:.0f} MiB at 8N (above the imports: {_added_mib(g['memory_n'])} and "
            f"{_added_mib(g['memory_8n'])} MiB); {g['dataops_rows_per_s']:,} rows/s vs {g['compute_rows_per_s']:,} rows/s "
            f"for the baseline. Baseline: {g['baseline']} At 8N: {g['dataops_8n_rows_per_s']:,} rows/s."
            + (
                f" The split assignment alone (key column read, sha256 per key; the baseline has "
                f"none): {g['split_rows_per_s']:,} rows/s, {g['split_share']:.0%} of preprocess's time."
                if "split_share" in g  # figures kept from a results.json written before it
                else ""
            )
        )
    if "dvc" in f:
        d = f["dvc"]
        details.append(
            f"DVC ({d['examples']} examples, {d['dataset_files']} files, {d['dataset_bytes'] / 1e6:.1f} MB): `dvc repro` nothing changed {d['repro_noop_median_s']:.2f} s, "
            f"of which DVC's bare start-up (`dvc version`) {d.get('dvc_version_median_s', float('nan')):.2f} s; after changing one validate expectation "
            f"{d['repro_validate_changed_median_s']:.2f} s (only `validate` reruns)."
        )
    if f.get("airflow", {}).get("status") == "ok":
        a = f["airflow"]
        details.append(
            f"Airflow: DAG file {a['dag_file_median_s']:.3f} s after `import airflow.sdk` ({a['airflow_sdk_import_median_s']:.2f} s, already loaded in the DAG processor); heavy modules loaded by the DAG file: {a['heavy_modules_loaded'] or 'none'}."
        )
    details += beam.beam_markdown(f.get("beam"))
    if details:
        lines += ["", *[f"- {d}" for d in details]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_chart(path: Path, res: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["targets"]
    labels, scores, colors, texts = [], [], [], []
    for row in rows:
        v = row["measured"]
        labels.append(row["label"].replace("`", ""))
        if v is None:
            scores.append(0.0)
            colors.append("#bbbbbb")
            texts.append("not available")
            continue
        # margin: >= 1 means the target is met, whichever direction it points
        score = (
            v / row["threshold"] if row["op"] == ">=" else (row["threshold"] / v if v > 0 else 10.0)
        )
        scores.append(score)
        colors.append("#2a9d8f" if row["pass"] else "#e76f51")
        texts.append(
            f"{_fmt(v, row['unit'])} (target {row['op']} {row['threshold']:g}{' s' if row['unit'] == 's' else '×'})"
        )
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.2))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, scores, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("measured relative to target (≥ 1 meets it; log scale)")
    for yi, s, t in zip(y, scores, texts, strict=True):
        ax.text(max(s, 0.02) * 1.05, yi, t, va="center", fontsize=7)
    shown = [x for x in scores if x > 0]
    ax.set_xlim(min(0.25, min(shown) / 2) if shown else 0.1, max(max(scores) * 6, 10))
    ax.set_title(
        f"dataops benchmark{' (quick)' if res['quick'] else ''}: {res['machine']['cpu_count']} cores",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="small sizes, one repetition (under two minutes)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench",
        help="where results.json, results.md and ratios.png go",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch directory (default: a temp dir, removed at the end)",
    )
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=SECTIONS,
        help="leave a section out (debugging)",
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        choices=SECTIONS,
        help="run only this section (repeatable); `read` needs `serialize`",
    )
    ap.add_argument(
        "--build-gb",
        type=beam.build_gb_arg,
        help="GB of CSV for the beam section's build (default 3; --quick tiny)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only:
        args.skip = sorted(set(args.skip) | (set(SECTIONS) - set(args.only)))
    if args.worker:
        _worker(args)
        return 0
    sizes = QUICK if args.quick else FULL
    t_start = time.perf_counter()
    res: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "quick": args.quick,
        "sizes": asdict(sizes),
        "machine": machine(),
        "versions": versions(),
        "figures": {},
    }
    work = args.work or Path(tempfile.mkdtemp(prefix="dataops-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figs = res["figures"]

    def log(msg: str) -> None:
        print(f"[bench {time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    try:
        pre: dict[str, Path] = {}
        if {"serialize", "read", "gzip", "memory"} - set(args.skip):
            log(f"generating data in {work}")
            pre = {
                "small": make_preprocessed(
                    "small", sizes.small, work / "pre-small", row_group=sizes.small_batch_rows
                ),
                "image": make_preprocessed(
                    "image", sizes.image, work / "pre-image", row_group=sizes.image_batch_rows
                ),
            }
            import tensorflow  # noqa: F401  (import once, outside every timed region)

        if "serialize" not in args.skip:
            figs["serialize"] = {}
            for kind in ("small", "image"):
                log(f"serialize {kind}")
                figs["serialize"][kind] = bench_serialize(
                    kind, pre[kind], work, getattr(sizes, kind), sizes
                )
        if "read" not in args.skip and "serialize" in figs:
            figs["read"] = {}
            for kind in ("small", "image"):
                log(f"read {kind}")
                figs["read"][kind] = bench_read(
                    kind, Path(figs["serialize"][kind]["dataset"]), getattr(sizes, kind), sizes
                )
            log("read small, shuffled")
            figs["read_shuffled"] = {
                "small": bench_read_shuffled(
                    Path(figs["serialize"]["small"]["dataset"]), sizes.small, sizes
                )
            }
        if "gzip" not in args.skip:
            log("gzip")
            figs["gzip"] = {"small": bench_gzip("small", pre["small"], work, sizes.small, sizes)}
        if "memory" not in args.skip:
            log("memory")
            pre8 = make_preprocessed(
                "image", 8 * sizes.image, work / "pre-image-8n", row_group=sizes.image_batch_rows
            )
            figs["memory"] = bench_memory(pre["image"], pre8, work, sizes)
        if "ingest" not in args.skip:
            log("ingest")
            figs["ingest"] = bench_ingest(work, sizes)
        if "preprocess" not in args.skip:
            log("preprocess")
            figs["preprocess"] = bench_preprocess(work, sizes)
        if "dvc" not in args.skip:
            log("dvc")
            figs["dvc"] = bench_dvc(work, sizes)
        if "airflow" not in args.skip:
            log("airflow")
            figs["airflow"] = bench_airflow(work, sizes)
        if "beam" not in args.skip:
            figs["beam"] = beam.bench_beam(work, args.quick, args.build_gb, log)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    for section in figs.values():  # scratch paths mean nothing after the run
        for v in section.values() if isinstance(section, dict) else []:
            if isinstance(v, dict):
                v.pop("dataset", None)
    res["sections_run"] = [name for name in SECTIONS if name not in args.skip]
    if args.only:
        res["earlier_sections"] = _keep_earlier(args.out / "results.json", figs, args)
    ratios, notes = collect_ratios(figs)
    res["ratios"] = ratios
    res["targets"] = evaluate(ratios, notes)
    res["all_pass"] = all(r["pass"] for r in res["targets"])
    res["machine"]["load_average_end"] = list(os.getloadavg())
    res["duration_s"] = round(time.perf_counter() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(res, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    write_markdown(args.out / "results.md", res)
    write_chart(args.out / "ratios.png", res)
    log(f"wrote {args.out / 'results.json'}, results.md, ratios.png")
    print((args.out / "results.md").read_text())
    return 0


def _keep_earlier(path: Path, figs: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """With `--only`: the figures of the sections not run now, taken from the earlier
    `results.json` at `--out` when it was measured in the same mode; returns their names."""
    try:
        prev = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if prev.get("quick") != args.quick:
        return []
    kept = []
    for name, fig in prev.get("figures", {}).items():
        section = "read" if name == "read_shuffled" else name
        if section in args.skip and name not in figs:
            figs[name] = fig
            kept.append(name)
    return sorted(kept)


def collect_ratios(figs: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """The figures the targets are about, keyed like `TARGETS`; notes say why one is missing."""
    r: dict[str, float | None] = {t.name: None for t in TARGETS}
    notes: dict[str, str] = {}
    ser, read, gz, mem, dvc, af = (
        figs.get(k) for k in ("serialize", "read", "gzip", "memory", "dvc", "airflow")
    )
    if ser:
        r["serialize_small_vs_loop"] = ser["small"]["ratio"]
        r["serialize_image_vs_loop"] = ser["image"]["ratio"]
    if read:
        r["read_small_vs_parse_single"] = read["small"]["load_vs_parse_single"]
        r["read_image_vs_raw"] = read["image"]["load_vs_raw"]
        for k in ("read_small_vs_parse_single", "read_image_vs_raw"):
            if r[k] is None:
                notes[k] = read["small"]["status"]
    if gz:
        r["gzip_write_vs_none"] = gz["small"]["write_ratio"]
    if mem:
        r["rss_serialize_8n_vs_n"] = mem["serialize_ratio"]
        r["rss_load_8n_vs_n"] = mem["load_ratio"]
        if mem["load_ratio"] is None:
            notes["rss_load_8n_vs_n"] = mem["load_status"]
    ing, pre = figs.get("ingest"), figs.get("preprocess")
    if ing:
        r["rss_ingest_8n_vs_n"] = ing["rss_ratio"]
        r["ingest_vs_read_csv"] = ing["ratio"]
    if pre:
        r["rss_preprocess_8n_vs_n"] = pre["rss_ratio"]
        r["preprocess_vs_compute"] = pre["ratio"]
    if dvc:
        r["dvc_repro_noop_s"] = dvc["repro_noop_median_s"]
        r["dvc_push_vs_one_file"] = dvc["push_ratio"]
        r["dvc_pull_vs_one_file"] = dvc["pull_ratio"]
    if af:
        if af["status"] == "ok":
            r["dag_import_s"] = af["dag_file_median_s"]
        else:
            notes["dag_import_s"] = af["status"]
    beam_ratios, beam_notes = beam.beam_ratios(figs.get("beam"))
    r.update(beam_ratios)
    notes.update(beam_notes)
    return r, notes


if __name__ == "__main__":
    sys.exit(main())
