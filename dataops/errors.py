"""The errors a user can meet, each mapped to a CLI exit code; signals turned into one of them.

Exit codes: 1 data, integrity, validation or I/O; 2 usage or config; 128 + N for signal N
(130 for SIGINT/Ctrl-C, 143 for SIGTERM, what Airflow and Kubernetes send).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Longest quoted value a message carries; longer ones are cut with their length said.
CLIP = 200


class DataopsError(Exception):
    """Base class: a message meant for the person running the pipeline."""

    exit_code = 1


class ConfigError(DataopsError):
    """`params.yaml` or a command-line option is wrong (exit code 2)."""

    exit_code = 2


class DatasetError(DataopsError):
    """Input data or a serialized dataset is bad: a row, a file or a shard (exit code 1)."""

    exit_code = 1


class ValidationFailed(DataopsError):
    """Validation found violations; `violations` holds one line each (exit code 1)."""

    exit_code = 1

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        super().__init__("\n".join(self.violations))


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A KeyboardInterrupt, so `except Exception` does not catch it and
    every `atomic_dir` removes its partial output on the way out."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal_name(signum))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def clip(value: Any, limit: int = CLIP) -> str:
    """`repr(value)` (`str` for str), cut to `limit` characters with `… (N chars)` when longer."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} chars)"


def stating_input(msg: str, value: Any) -> str:
    """A validation message that names the offending value once: `msg (got X)`, or `msg` as
    it is when it already ends in the value (`... got X`, as the project's validators write)."""
    msg = msg.removeprefix("Value error, ")
    stated = {repr(value), str(value)}
    if any(msg.endswith(f"got {v}") for v in stated):
        return msg
    return f"{msg} (got {clip(repr(value))})"


def quote(value: Any, limit: int = CLIP) -> str:
    """A value as messages quote it: `'abc'`, cut like `clip`."""
    return clip(repr(value) if isinstance(value, str) else value, limit)


# ---- signals -------------------------------------------------------------------------------
# The first SIGINT/SIGTERM is recorded for the whole process (`received()`), so an interrupt that
# some library swallowed ("Exception ignored in ...: KeyboardInterrupt", which Python prints when
# the signal lands inside a __del__ or a generator's close) still stops the run at the next
# `raise_if_interrupted()`: before any output is committed and before a verdict is printed.

_state: dict[str, Any] = {"received": None, "pending": None, "deferred": 0, "installed": False}


def received() -> int | None:
    """The number of the first SIGINT/SIGTERM this process received, or None."""
    return _state["received"]


STOP_GRACE_SECONDS = 60.0
"""After SIGINT/SIGTERM, the process ends within this time even when a library's cleanup hangs
(Beam's DirectRunner can join a worker thread forever once its bundle was torn down): it exits
128+signal; what it left is cleaned by the next run, as after `kill -9`. Override with
`$DATAOPS_STOP_GRACE` (seconds)."""


def _force_exit(signum: int) -> None:
    import os
    import sys

    err = sys.__stderr__
    if err is not None and not _state.get("reported"):
        err.write(
            f"error: interrupted ({signal_name(signum)}); cleanup did not finish in time, stopping now "
            "(the next run removes what is left)\n"
        )
        err.flush()
    os._exit(128 + signum)


def mark_reported() -> None:
    """The failure has been printed: a forced stop after a signal adds no second line."""
    _state["reported"] = True


def _handler(signum: int, frame: Any) -> None:
    if _state["received"] is None:
        _state["received"] = signum
        import os

        grace = float(os.environ.get("DATAOPS_STOP_GRACE", STOP_GRACE_SECONDS))
        timer = threading.Timer(grace, _force_exit, args=(signum,))
        timer.daemon = True
        timer.start()
    if _state["deferred"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread (call once, from the CLI).

    A signal the process inherited as ignored stays ignored (`nohup`, a shell's background job
    ignores Ctrl-C), as Python itself does for SIGINT.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        signal.signal(sig, _handler)
    _state["installed"] = True
    default = sys.unraisablehook

    def unraisable(u: Any) -> None:
        # a signal raised inside a __del__ or a weakref callback: Python prints it as
        # "Exception ignored in ..."; it is recorded already and stops the run at the next
        # `raise_if_interrupted`, which reports it in one line
        if isinstance(u.exc_value, Interrupted):
            return
        default(u)

    sys.unraisablehook = unraisable


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a signal arrived at any time in this process, even a swallowed one."""
    if _state["received"] is not None:
        _state["pending"] = None
        raise Interrupted(_state["received"])


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM during a step that must not be cut in half (a rename pair, a cleanup);
    a signal that arrived meanwhile is raised when the outermost such block ends."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
    if not _state["deferred"] and _state["pending"] is not None:
        signum, _state["pending"] = _state["pending"], None
        raise Interrupted(signum)
