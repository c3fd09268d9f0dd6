"""`make bench`, section `beam`: the build on Apache Beam against the in-process driver, and
Beam serialize against Beam's own `WriteToTFRecord`, as ratios measured in the same run.

- **Build** (ingest → preprocess → serialize) of one generated CSV of `--build-gb` GB, each
  stage run by its command (`dataops ingest|preprocess|serialize`, as `dvc repro` runs it):
  the in-process driver, then DirectRunner with 1 and with 2 worker processes
  (`--direct_num_workers=N --direct_running_mode=multi_processing`), alternating. Ingest runs on
  Beam when its command takes `--engine`, else in process for all three (the figure says which).
- **Peak RSS per Beam worker**: the largest peak (VmHWM) of any Beam worker process during the
  2-worker build at 1/8 of that CSV (N) and at all of it (8N); /proc is sampled every 0.2 s.
- **Serialize through Beam** (`run_serialize_beam`) vs the pipeline a Beam user writes by hand:
  `ReadFromParquet` → `Map(tf.train.Example(...).SerializeToString())` → `WriteToTFRecord`,
  small records, same runner options.

Every Beam pipeline runs in a child process (the bench process stays light, its /proc tree is
what is measured). Entry points for `bench/run.py`: `TARGETS`, `bench_beam`, `beam_ratios`,
`beam_markdown`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: (name, label, op, threshold, unit), as `bench.run.Target`.
TARGETS = [
    (
        "beam_build_2_vs_1_workers",
        "build (ingest → preprocess → serialize) on Beam, 2 workers vs 1",
        ">=",
        1.6,
        "x",
    ),
    (
        "beam_build_1_worker_time_vs_in_process",
        "build on Beam with 1 worker: time vs the in-process driver",
        "<=",
        1.5,
        "x",
    ),
    (
        "rss_beam_worker_8n_vs_n",
        "peak RSS per Beam worker (build, 2 workers), 8N vs N",
        "<=",
        1.2,
        "x",
    ),
    (
        "beam_serialize_small_vs_write_to_tfrecord",
        "serialize on Beam, small records, vs `WriteToTFRecord` of per-element `SerializeToString`",
        ">=",
        5.0,
        "x",
    ),
]

ENGINES = {
    "in_process": None,
    "beam_1": "--direct_num_workers=1 --direct_running_mode=multi_processing",
    "beam_2": "--direct_num_workers=2 --direct_running_mode=multi_processing",
}
SERIALIZE_ENGINE = "beam_2"
SAMPLE_S = 0.2
_SHELLS = {"sh", "dash", "bash"}


@dataclass(frozen=True)
class BeamSizes:
    """Sizes of the section: the build's CSV (GB; the RSS figure's N is 1/8 of it), the small
    records of the serialize figure, and repetitions of each side."""

    build_gb: float
    serialize_rows: int
    build_reps: int
    serialize_reps: int


FULL = BeamSizes(build_gb=3.0, serialize_rows=1_000_000, build_reps=1, serialize_reps=3)
QUICK = BeamSizes(build_gb=0.002, serialize_rows=20_000, build_reps=1, serialize_reps=1)


def build_gb_arg(text: str) -> float:
    """`--build-gb`: a positive, finite number of GB."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"a positive number of GB of CSV, got {text!r}")
    return value


def _run_module() -> Any:
    from bench import run

    return run


def _env() -> dict[str, str]:
    """The child processes' environment: this checkout first on PYTHONPATH, so `dataops` and
    `bench.beam` resolve here in the stage commands and in Beam's worker processes."""
    extra = os.environ.get("PYTHONPATH", "")
    return {
        **_run_module()._env(),
        "PYTHONPATH": str(ROOT) + (os.pathsep + extra if extra else ""),
    }


# --- peak RSS of a process tree ------------------------------------------------------------


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _hwm_kib(pid: int) -> int:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith(b"VmHWM:"):
            return int(line.split()[1])
    return 0


class TreePeaks:
    """Samples the peak RSS (VmHWM) of a process and of each of its descendants while they
    run, by kind: `driver` (the process itself), `worker` (a Beam SDK worker process), `other`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _kind(self, pid: int) -> str:
        if pid == self.pid:
            return "driver"
        comm = _read(f"/proc/{pid}/comm").strip().decode(errors="replace")
        if comm not in _SHELLS and b"sdk_worker_main" in _read(f"/proc/{pid}/cmdline"):
            return "worker"
        return "other"

    def _descendants(self) -> set[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            stat = _read(f"/proc/{name}/stat")
            if stat:
                ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
                children.setdefault(ppid, []).append(int(name))
        found, todo = set(), [self.pid]
        while todo:
            p = todo.pop()
            found.add(p)
            todo += children.get(p, [])
        return found

    def sample(self) -> None:
        # a process seen once stays watched: Beam's workers may outlive their shell parent
        for pid in self._descendants() | set(self.peaks):
            hwm = _hwm_kib(pid)
            if hwm:
                kind, old = self.peaks.get(pid, (None, 0))
                self.peaks[pid] = (kind or self._kind(pid), max(old, hwm))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        by_kind = {
            k: [v for kind, v in self.peaks.values() if kind == k] for k in ("driver", "worker")
        }
        return {
            "driver_peak_rss_kib": max(by_kind["driver"], default=0),
            "worker_peak_rss_kib": max(by_kind["worker"], default=0),
            "worker_processes": len(by_kind["worker"]),
        }


def run_measured(args: list[str], cwd: Path) -> dict[str, Any]:
    """Run a command to its end; its wall time and the peak RSS of its process tree, sampled
    per process kind. (Not `wait4`'s `ru_maxrss`: on Linux it includes the forking parent's
    peak from before the exec, i.e. this process's.)"""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        peaks = TreePeaks(proc.pid)
        proc.wait()
        dt = time.perf_counter() - t
        out = peaks.stop()
        if proc.returncode != 0:
            err.seek(0)
            text = err.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(
                f"`{' '.join(args)}` in {cwd} failed (exit {proc.returncode}): {text}"
            )
    return {"s": round(dt, 3), **out}


# --- the build -----------------------------------------------------------------------------


def _dataops(*args: str) -> list[str]:
    """The `dataops` command, run with this interpreter."""
    return [
        sys.executable,
        "-c",
        "import sys; from dataops.cli import main; sys.exit(main())",
        *args,
    ]


def ingest_takes_engine() -> bool:
    """True when `dataops ingest` accepts `--engine` (then ingest runs on Beam too)."""
    proc = subprocess.run(
        _dataops("ingest", "--help"), capture_output=True, text=True, env=_env(), check=False
    )
    return proc.returncode == 0 and "--engine" in proc.stdout


def write_params(root: Path) -> None:
    """`root/params.yaml`: the ingest and preprocess params of the ingest and preprocess
    sections (`bench.run.ingest_params`, `preprocess_params`), serialize at its defaults."""
    import yaml

    run = _run_module()
    dump = {"mode": "json", "by_alias": True, "exclude_defaults": True}
    params = {
        "dataset": {"name": "bench"},
        "ingest": run.ingest_params("t.csv").model_dump(**dump),
        "preprocess": run.preprocess_params().model_dump(**dump),
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def make_build_input(root: Path, gb: float, seed: int) -> dict[str, Any]:
    """A CSV of about `gb` GB (`bench.run.make_csv`'s columns) and its params.yaml."""
    run = _run_module()
    root.mkdir(parents=True, exist_ok=True)
    probe = root / "probe.csv"
    per_row = run.make_csv(probe, 20_000, seed=seed) / 20_000
    probe.unlink()
    rows = max(1000, round(gb * 1e9 / per_row))
    size = run.make_csv(root / "t.csv", rows, seed=seed)
    write_params(root)
    return {"root": root, "rows": rows, "csv_bytes": size}


def build_once(root: Path, engine: str, beam_ingest: bool) -> dict[str, Any]:
    """ingest → preprocess → serialize of `root` by the stage commands on `engine`; every
    output is removed afterwards. Returns the wall time of each stage, the peaks, the example
    count and the sha256 of `metadata.json` (which holds every shard's sha256)."""
    options = ENGINES[engine]
    beam = ["--engine", "beam", "--beam-options", options] if options else []
    out = root / f"out-{engine}"
    shutil.rmtree(out, ignore_errors=True)
    steps = [
        ("ingest", ["ingest", "--out", str(out / "snapshot")] + (beam if beam_ingest else [])),
        (
            "preprocess",
            ["preprocess", "--snapshot", str(out / "snapshot"), "--out", str(out / "pre")] + beam,
        ),
        (
            "serialize",
            ["serialize", "--preprocessed", str(out / "pre"), "--out", str(out / "ds")] + beam,
        ),
    ]
    stages = {}
    try:
        for name, args in steps:
            stages[name] = run_measured(_dataops("--quiet", *args), root)
        meta = (out / "ds" / "metadata.json").read_bytes()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "s": round(sum(s["s"] for s in stages.values()), 3),
        "stages": stages,
        "examples": sum(s["num_examples"] for s in json.loads(meta)["splits"]),
        "metadata_sha256": hashlib.sha256(meta).hexdigest(),
        "worker_peak_rss_kib": max(s["worker_peak_rss_kib"] for s in stages.values()),
        "driver_peak_rss_kib": max(s["driver_peak_rss_kib"] for s in stages.values()),
    }


def bench_build(work: Path, gb: float, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    best = _run_module().best
    beam_ingest = ingest_takes_engine()
    log(f"beam build: generating {gb:g} GB of CSV")
    inp = make_build_input(work / "beam-build", gb, seed=3)
    root, rows = inp["root"], inp["rows"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ENGINES}
    for r in range(reps):
        for engine in list(ENGINES) if r % 2 == 0 else list(ENGINES)[::-1]:
            log(f"beam build: {engine} ({rows:,} rows)")
            runs[engine].append(build_once(root, engine, beam_ingest))
    shutil.rmtree(root, ignore_errors=True)
    sums = {run["metadata_sha256"] for rs in runs.values() for run in rs}
    counts = {run["examples"] for rs in runs.values() for run in rs}
    if counts != {rows}:
        raise RuntimeError(f"beam build: wrote {sorted(counts)} examples, expected {rows}")
    t = {k: [run["s"] for run in rs] for k, rs in runs.items()}
    # preprocess + serialize only: the stages on Beam in every case
    ps = {
        k: [run["stages"]["preprocess"]["s"] + run["stages"]["serialize"]["s"] for run in rs]
        for k, rs in runs.items()
    }
    return {
        "build_gb": gb,
        "csv_bytes": inp["csv_bytes"],
        "rows": rows,
        "ingest_engine": "beam" if beam_ingest else "in_process",
        "note": ""
        if beam_ingest
        else "ingest has no --engine: it runs in process in all three builds",
        "beam_options": {k: v for k, v in ENGINES.items() if v},
        "runs": runs,
        "same_bytes": len(sums) == 1,
        **{f"{k}_s": v for k, v in t.items()},
        **{f"{k}_rows_per_s": round(rows / best(v)) for k, v in t.items()},
        "beam_2_vs_1": round(best(t["beam_1"]) / best(t["beam_2"]), 3),
        "beam_1_time_vs_in_process": round(best(t["beam_1"]) / best(t["in_process"]), 3),
        "preprocess_serialize": {
            "beam_2_vs_1": round(best(ps["beam_1"]) / best(ps["beam_2"]), 3),
            "beam_1_time_vs_in_process": round(best(ps["beam_1"]) / best(ps["in_process"]), 3),
        },
    }


def bench_worker_rss(
    work: Path, build: dict[str, Any], gb: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Peak RSS per worker of the 2-worker build at N (1/8 of the build's CSV, built here) and
    8N (the build's own runs)."""
    beam_ingest = build["ingest_engine"] == "beam"
    log("beam build: beam_2 at N (the build's CSV / 8)")
    inp = make_build_input(work / "beam-build-n", gb / 8, seed=4)
    n = build_once(inp["root"], "beam_2", beam_ingest)
    shutil.rmtree(inp["root"], ignore_errors=True)
    peak_8n = max(run["worker_peak_rss_kib"] for run in build["runs"]["beam_2"])
    out: dict[str, Any] = {
        "engine": "beam_2",
        "rows_n": inp["rows"],
        "rows_8n": build["rows"],
        "worker_peak_rss_kib_n": n["worker_peak_rss_kib"],
        "worker_peak_rss_kib_8n": peak_8n,
        "driver_peak_rss_kib_n": n["driver_peak_rss_kib"],
        "driver_peak_rss_kib_8n": max(
            run["driver_peak_rss_kib"] for run in build["runs"]["beam_2"]
        ),
        "sample_s": SAMPLE_S,
    }
    out["ratio"] = (
        round(peak_8n / n["worker_peak_rss_kib"], 3) if n["worker_peak_rss_kib"] else None
    )
    return out


# --- serialize on Beam vs WriteToTFRecord --------------------------------------------------


def to_example(row: dict[str, Any], features: list[tuple[str, str]]) -> bytes:
    """What a Beam user writes by hand: one `tf.train.Example` per element from its Python
    values (TFDS's Beam writer does the same per example)."""
    import tensorflow as tf

    _crc32c_for_write_to_tfrecord()
    feature = {}
    for name, dtype in features:
        v = row[name]
        vals = v if isinstance(v, list) else [v]
        if dtype == "string":
            feature[name] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[s.encode() for s in vals])
            )
        elif dtype == "float32":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=vals))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=vals))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _crc32c_for_write_to_tfrecord() -> None:
    """`WriteToTFRecord` computes its CRC-32C with python-snappy, google-crc32c or crcmod (the
    `apache-beam[tfrecord]` extra), and fails without one; this environment has none, so it
    gets the `crc32c` package's function (hardware CRC-32C, as google-crc32c's)."""
    from apache_beam.io import tfrecordio

    if not tfrecordio._default_crc32c_fn.fn:  # type: ignore[attr-defined]
        import crc32c

        tfrecordio._default_crc32c_fn.fn = crc32c.crc32c  # type: ignore[attr-defined]


def write_to_tfrecord(pre: Path, out: Path, options: str) -> None:
    """`ReadFromParquet` → `Map(to_example)` → `WriteToTFRecord`, shards as Beam cuts them
    (one per bundle: the records are written where they are encoded; a fixed `num_shards`
    would move every record through a shuffle first, which is slower)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    features = [
        (f["name"], f["dtype"]) for f in json.loads((pre / "state.json").read_text())["features"]
    ]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with beam.Pipeline(options=PipelineOptions(options.split())) as p:
        _ = (
            p
            | "read" >> beam.io.ReadFromParquet(str(pre / "train.parquet"))
            | "encode" >> beam.Map(to_example, features)
            | "write" >> beam.io.WriteToTFRecord(str(out / "train"), file_name_suffix=".tfrecord")
        )


def _serialize_child(job: dict[str, Any]) -> dict[str, Any]:
    """In a child process: both sides, alternating, `reps` times each (no warm-up: every
    pipeline starts its own workers anyway); the record counts are checked after."""
    import apache_beam  # noqa: F401  (imports outside the timed region)
    import tensorflow  # noqa: F401

    from dataops.beam.serialize import run_serialize_beam
    from dataops.config import SerializeParams
    from dataops.tfrecord.codec import iter_records

    pre, out, options = Path(job["pre"]), Path(job["out"]), job["options"]
    params = SerializeParams(batch_rows=job["batch_rows"])

    def dataops() -> None:
        run_serialize_beam(params, "bench", pre, out / "dataops", options)

    def baseline() -> None:
        write_to_tfrecord(pre, out / "baseline", options)

    times: dict[str, list[float]] = {"dataops": [], "write_to_tfrecord": []}
    for r in range(job["reps"]):
        order = [("dataops", dataops), ("write_to_tfrecord", baseline)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            fn()
            times[name].append(round(time.perf_counter() - t, 3))
    files = sorted((out / "baseline").glob("train-*.tfrecord"))
    base_n = sum(sum(1 for _ in iter_records(str(f), check_crc=False)) for f in files)
    ds_files = sorted((out / "dataops").glob("*.tfrecord-*"))
    ds_n = sum(sum(1 for _ in iter_records(str(f), check_crc=False)) for f in ds_files)
    return {
        "times": times,
        "records": {"dataops": ds_n, "write_to_tfrecord": base_n},
        "shards": {"dataops": len(ds_files), "write_to_tfrecord": len(files)},
        "bytes": {
            "dataops": sum(f.stat().st_size for f in ds_files),
            "write_to_tfrecord": sum(f.stat().st_size for f in files),
        },
    }


def bench_serialize(work: Path, rows: int, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    run = _run_module()
    log(f"beam serialize: {rows:,} small records, {ENGINES[SERIALIZE_ENGINE]}")
    batch_rows = 8192
    pre = run.make_preprocessed("small", rows, work / "beam-ser-pre", row_group=batch_rows)
    job = {
        "pre": str(pre),
        "out": str(work / "beam-ser-out"),
        "options": ENGINES[SERIALIZE_ENGINE],
        "batch_rows": batch_rows,
        "reps": reps,
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--serialize-job", json.dumps(job)],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    shutil.rmtree(work / "beam-ser-out", ignore_errors=True)
    shutil.rmtree(pre, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"beam serialize failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if set(res["records"].values()) != {rows}:
        raise RuntimeError(f"beam serialize: wrote {res['records']} records, expected {rows} each")
    t = res["times"]
    best = run.best
    return {
        "rows": rows,
        "engine": SERIALIZE_ENGINE,
        "beam_options": ENGINES[SERIALIZE_ENGINE],
        "batch_rows": batch_rows,
        "bytes_per_record": round(res["bytes"]["dataops"] / rows, 1),
        "shards": res["shards"],
        "crc32c": "`WriteToTFRecord` needs python-snappy, google-crc32c or crcmod "
        "(`apache-beam[tfrecord]`), not installed here: it got the `crc32c` package's function.",
        "dataops_s": t["dataops"],
        "write_to_tfrecord_s": t["write_to_tfrecord"],
        "dataops_records_per_s": round(rows / best(t["dataops"])),
        "write_to_tfrecord_records_per_s": round(rows / best(t["write_to_tfrecord"])),
        "ratio": round(best(t["write_to_tfrecord"]) / best(t["dataops"]), 3),
    }


# --- the section ---------------------------------------------------------------------------


def bench_beam(
    work: Path, quick: bool, build_gb: float | None, log: Callable[[str], None]
) -> dict[str, Any]:
    """The section's figures: `build`, `worker_rss`, `serialize` (and the sizes used)."""
    try:
        import apache_beam  # noqa: F401
    except ImportError as err:
        return {"status": f"not available: Apache Beam is not installed ({err})"}
    sizes = QUICK if quick else FULL
    gb = sizes.build_gb if build_gb is None else build_gb
    build = bench_build(work, gb, sizes.build_reps, log)
    return {
        "status": "ok",
        "sizes": {**asdict(sizes), "build_gb": gb},
        "build": build,
        "worker_rss": bench_worker_rss(work, build, gb, log),
        "serialize": bench_serialize(work, sizes.serialize_rows, sizes.serialize_reps, log),
    }


def beam_ratios(fig: dict[str, Any] | None) -> tuple[dict[str, float | None], dict[str, str]]:
    """The section's figures keyed like `TARGETS`; notes say why one is missing or how it was
    measured."""
    names = [t[0] for t in TARGETS]
    if not fig:
        return {}, {}
    if fig.get("status") != "ok":
        return dict.fromkeys(names), dict.fromkeys(names, fig.get("status", "not run"))
    b = fig["build"]
    ratios = {
        "beam_build_2_vs_1_workers": b["beam_2_vs_1"],
        "beam_build_1_worker_time_vs_in_process": b["beam_1_time_vs_in_process"],
        "rss_beam_worker_8n_vs_n": fig["worker_rss"]["ratio"],
        "beam_serialize_small_vs_write_to_tfrecord": fig["serialize"]["ratio"],
    }
    notes = {}
    if b["note"]:
        notes["beam_build_2_vs_1_workers"] = notes["beam_build_1_worker_time_vs_in_process"] = b[
            "note"
        ]
    if ratios["rss_beam_worker_8n_vs_n"] is None:
        notes["rss_beam_worker_8n_vs_n"] = "no Beam worker process was seen at N"
    return ratios, notes


def beam_markdown(fig: dict[str, Any] | None) -> list[str]:
    """Lines for the details list of results.md."""
    if not fig or fig.get("status") != "ok":
        return []
    b, m, s = fig["build"], fig["worker_rss"], fig["serialize"]
    ps = b["preprocess_serialize"]
    return [
        f"Build on Beam (DirectRunner, worker processes): ingest → preprocess → serialize of one CSV, "
        f"{b['csv_bytes'] / 1e6:,.0f} MB ({b['rows']:,} rows; `--build-gb {b['build_gb']:g}`), each stage by its "
        f"command; ingest {'on Beam' if b['ingest_engine'] == 'beam' else 'in process in all three (it has no `--engine`)'}. "
        f"In process {b['in_process_rows_per_s']:,} rows/s, Beam 1 worker {b['beam_1_rows_per_s']:,}, "
        f"2 workers {b['beam_2_rows_per_s']:,}: 2 vs 1 {b['beam_2_vs_1']:.2f}×, 1 worker takes "
        f"{b['beam_1_time_vs_in_process']:.2f}× the in-process time. Preprocess + serialize alone: 2 vs 1 "
        f"{ps['beam_2_vs_1']:.2f}×, 1 worker {ps['beam_1_time_vs_in_process']:.2f}× the in-process time. "
        f"Same bytes (metadata.json with every shard's sha256) from all three: {'yes' if b['same_bytes'] else '**no**'}.",
        f"Peak RSS per Beam worker (2 workers, sampled every {m['sample_s']} s): "
        f"{m['worker_peak_rss_kib_n'] / 1024:.0f} MiB at {m['rows_n']:,} rows, {m['worker_peak_rss_kib_8n'] / 1024:.0f} MiB "
        f"at {m['rows_8n']:,}; the driver process: {m['driver_peak_rss_kib_n'] / 1024:.0f} and "
        f"{m['driver_peak_rss_kib_8n'] / 1024:.0f} MiB.",
        f"Serialize on Beam ({s['beam_options']}; {s['rows']:,} small records, {s['bytes_per_record']:.0f} B each): "
        f"`run_serialize_beam` {s['dataops_records_per_s']:,}/s vs `ReadFromParquet` → `Map(tf.train.Example(...)"
        f".SerializeToString())` → `WriteToTFRecord` "
        f"{s['write_to_tfrecord_records_per_s']:,}/s: {s['ratio']:.2f}× (shards: {s['shards']['dataops']} and "
        f"{s['shards']['write_to_tfrecord']}, as Beam cut them). {s['crc32c']}",
    ]


if __name__ == "__main__":  # the child process of the serialize figure
    if sys.argv[1:2] == ["--serialize-job"]:
        from bench import beam as module  # the importable module: Beam's workers import it too

        print(json.dumps(module._serialize_child(json.loads(sys.argv[2]))))
    else:
        sys.exit(f"usage: {sys.argv[0]} --serialize-job JSON (bench/run.py runs the section)")
