"""The tasks of a Beam pass: ranges of consecutive batches, a few per worker (the worker count
read from the pipeline options), each small enough that a failed one is cheap to redo."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

TASKS_PER_WORKER = 4
"""Tasks per worker of a pass: enough for the workers to even out, few enough that the
per-task costs (opening the snapshot, its footer, Beam's per-element work) stay small."""

MAX_BATCHES_PER_TASK = 256
"""At most this many batches per task (1Mi rows at 4096): what a failed task costs to redo."""


def workers_of(args: Sequence[str]) -> int:
    """The number of workers the pipeline options ask for (DirectRunner's
    `--direct_num_workers`, else `--num_workers` / `--max_num_workers`); 1 when unsaid."""
    from apache_beam.options.pipeline_options import (
        DirectOptions,
        PipelineOptions,
        WorkerOptions,
    )

    options = PipelineOptions(list(args))
    worker = options.view_as(WorkerOptions)
    for n in (worker.max_num_workers, worker.num_workers):
        if n:
            return max(1, int(n))
    n = options.view_as(DirectOptions).direct_num_workers
    return max(1, int(n)) if n else max(1, os.cpu_count() or 1)


def tasks_for(
    num_batches: int, workers: int, batches_per_task: int | None
) -> list[tuple[int, int]]:
    """The tasks of a pass: ranges [a, b) of batch numbers, in order, covering every batch."""
    if batches_per_task is None:
        want = TASKS_PER_WORKER * max(1, workers)
        per = min(MAX_BATCHES_PER_TASK, max(1, math.ceil(num_batches / want)))
    else:
        per = max(1, batches_per_task)
    return [(a, min(a + per, num_batches)) for a in range(0, num_batches, per)]


def balanced_groups(sizes: Sequence[float], workers: int) -> list[list[int]]:
    """The indexes of `sizes` in at most `workers` groups of about equal total: largest first,
    each to the group with the least so far (the first such on a tie); each group in index
    order, the groups in order of their first index. DirectRunner deals a stage's elements to
    its workers once, round-robin in the (random) order a Reshuffle leaves, with no stealing:
    with one element per worker at most, no worker gets two while another has none."""
    groups: list[list[int]] = [[] for _ in range(max(1, min(workers, len(sizes))))]
    totals = [0.0] * len(groups)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        g = totals.index(min(totals))
        groups[g].append(i)
        totals[g] += sizes[i]
    return sorted((sorted(g) for g in groups if g), key=lambda g: g[0])
