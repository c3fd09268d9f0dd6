"""Progress of long steps: stages report through a `Progress` they are given (default: nowhere).

A stage stays pure: it takes an optional `progress` callable, asks
`tick = progress("sample", n, "examples")` and calls `tick(k)` after each `k` rows; it never
writes to a terminal, and does not import this module (so this module is no DVC dependency of
any stage: how progress is drawn reruns nothing). The CLI passes a `RichProgress` (bars on
stderr with rows/s and ETA) only when stderr is a terminal, or when `DATAOPS_PROGRESS=1`
forces it; `DATAOPS_PROGRESS=0` turns it off. Progress never changes a stage's output bytes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

Tick = Callable[[int], None]

ENV = "DATAOPS_PROGRESS"


def _nothing(n: int = 1) -> None:
    return None


NO_TICK: Tick = _nothing  # the tick of a step nobody watches


class Progress:
    """Where a stage reports how far it is. This base reports nowhere (`NO_PROGRESS`)."""

    def task(self, description: str, total: int | None = None, unit: str = "rows") -> Tick:
        """Start a step of `total` units (None: unknown); return the callable to advance it by n."""
        return _nothing

    def __call__(self, description: str, total: int | None, unit: str = "rows") -> Tick:
        """What a stage calls: the same as `task`."""
        return self.task(description, total, unit)


NO_PROGRESS = Progress()


class RichProgress(Progress):
    """Bars on a stream (stderr) drawn by `rich`: done/total, units per second, ETA, elapsed."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _Rich
        from rich.text import Text

        class RateColumn(ProgressColumn):
            """Units per second: recent while running, the average once done."""

            def render(self, task: Any) -> Text:
                unit = task.fields.get("unit", "rows")
                speed = None if task.finished else task.speed
                if speed is None and task.elapsed:
                    speed = task.completed / task.elapsed
                text = "?" if speed is None else f"{speed:,.0f}"
                return Text(f"{text} {unit}/s", style="progress.data.speed")

        class EtaColumn(TimeRemainingColumn):
            """`ETA h:mm:ss` while the total is known and the step runs; nothing otherwise."""

            def render(self, task: Any) -> Text:
                if task.total is None or task.finished:
                    return Text("")
                return Text.assemble("ETA ", super().render(task))

        console = Console(file=stream if stream is not None else sys.stderr, force_terminal=True)
        self._rich = _Rich(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            EtaColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            refresh_per_second=8,
        )

    def __enter__(self) -> RichProgress:
        self._rich.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self._close_open_ended()
        self._rich.stop()

    def _close_open_ended(self) -> None:
        """Steps run one after another: a step of unknown total is done when the next starts."""
        for t in self._rich.tasks:
            if t.total is None:
                self._rich.update(t.id, total=t.completed)

    def task(self, description: str, total: int | None = None, unit: str = "rows") -> Tick:
        rich = self._rich
        self._close_open_ended()
        tid = rich.add_task(description, total=total, unit=unit)

        def tick(n: int = 1) -> None:
            rich.advance(tid, n)

        return tick


def wanted(stream: IO[str] | None = None) -> bool:
    """Bars are drawn when `DATAOPS_PROGRESS=1`, or when the stream is a terminal and not `DATAOPS_PROGRESS=0`."""
    flag = os.environ.get(ENV, "").strip()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


@contextmanager
def terminal_progress(stream: IO[str] | None = None) -> Iterator[Progress]:
    """A `RichProgress` on stderr while the block runs if `wanted()`, else `NO_PROGRESS`."""
    if not wanted(stream):
        yield NO_PROGRESS
        return
    with RichProgress(stream) as progress:
        yield progress
