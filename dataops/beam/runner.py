"""Running a list of independent tasks on Beam and bringing their (small) results back.

Every heavy stage here has the same shape: the driver plans tasks that any worker can do
alone (a range of batches, one shard), Beam spreads them over the workers, and the results
(partial states, counts, shard descriptions) come back to the driver, which assembles the
output in the order of the task keys — never in the order the workers finished.
"""

from __future__ import annotations

import pickle
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dataops.errors import ConfigError, DatasetError


def import_beam() -> Any:
    try:
        import apache_beam as beam
    except ImportError:
        raise ConfigError(
            "--engine beam needs Apache Beam: install the 'beam' extra (pip install 'dataops[beam]')"
        ) from None
    return beam


def run_tasks(
    tasks: Sequence[Any],
    fn: Callable[[Any], Iterable[Any]],
    args: Sequence[str],
    work: str,
    combine: Any = None,
    label: str = "tasks",
) -> Any:
    """Run `fn` on every task on Beam; return the list of everything it yielded (in no
    particular order), or, with a `CombineFn`, its one combined output.

    The result travels through `work` (a directory on any Beam filesystem that the driver and
    the workers both reach: a local path on one machine, `s3://`/`gs://` on a cluster).
    """
    beam = import_beam()

    def build(p: Any) -> Any:
        done = (
            p
            | "plan" >> beam.Create(list(tasks), reshuffle=False)
            | "spread" >> beam.Reshuffle()
            | "run" >> beam.FlatMap(fn)
        )
        if combine is None:
            return done
        return done | "combine" >> beam.CombineGlobally(combine)

    value = run_pipeline(build, args, work, label)
    return value if combine is None else value[0]


def run_pipeline(
    build: Callable[[Any], Any], args: Sequence[str], work: str, label: str = "pipeline"
) -> list[Any]:
    """Run the pipeline whose graph `build(pipeline)` makes on Beam; return the list of the
    elements of the PCollection it returns (in no particular order), through `work` as
    `run_tasks` does. One pipeline starts its workers once: a stage that needs several
    steps runs them as one graph, not as one pipeline each."""
    beam = import_beam()
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    result = FileSystems.join(work, f"{label}-{secrets.token_hex(4)}.pickle")
    options = PipelineOptions(list(args))
    try:
        with beam.Pipeline(options=options) as p:
            _ = (
                build(p)
                | "collect" >> beam.combiners.ToList()
                | "return" >> beam.Map(_dump, result)
            )
    except Exception as err:
        raised = worker_error(err)
        if raised is None:
            raise
        raise raised from err
    with FileSystems.open(result) as f:
        value = pickle.loads(f.read())
    FileSystems.delete([result])
    return value  # type: ignore[no-any-return]


_RAISED = re.compile(r"dataops\.errors\.(ConfigError|DatasetError): (.*)")
_STEP = re.compile(r" \[while running '[^\n]*'\]$")


def worker_error(err: Exception) -> ConfigError | DatasetError | None:
    """The `ConfigError`/`DatasetError` a worker raised, as the driver raises it (one line),
    from what Beam raises instead: the error with ` [while running '<step>']` appended
    (in_memory), or a RuntimeError holding the worker's traceback (other modes, runners)."""
    if isinstance(err, ConfigError | DatasetError):
        if not _STEP.search(str(err).strip()):
            return None  # raised by the driver: as it is
        kind = "ConfigError" if isinstance(err, ConfigError) else "DatasetError"
        text = str(err)
    else:
        lines = str(err).strip().splitlines()
        found = _RAISED.fullmatch(lines[-1]) if lines else None  # the exception that ended it
        if found is None:
            return None
        kind, text = found.groups()
    text = _STEP.sub("", text.strip())
    return ConfigError(text) if kind == "ConfigError" else DatasetError(text)


def _dump(value: Any, path: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as f:
        f.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
