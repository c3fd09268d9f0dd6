"""The heavy stages on Apache Beam: the same pure functions as the in-process drivers, the same bytes.

`run_preprocess_beam` and `run_serialize_beam` are thin drivers over the per-batch and
per-shard functions of `dataops.stages.preprocess` and `dataops.stages.serialize`; only the scheduling
differs. Beam is an optional dependency (the `beam` extra): nothing here is imported by the
package or the CLI unless `--engine beam` is chosen.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

OPTIONS_ENV = "DATAOPS_BEAM_OPTIONS"
"""Environment variable holding the Beam pipeline options when `--beam-options` is not given."""


def beam_args(options: str | Sequence[str] | None = None) -> list[str]:
    """Pipeline options as argv: `options` (a shell-quoted string or a list), else the
    environment variable `DATAOPS_BEAM_OPTIONS`, else none (DirectRunner, one worker)."""
    if options is None:
        options = os.environ.get(OPTIONS_ENV, "")
    if isinstance(options, str):
        return shlex.split(options)
    return list(options)


ENGINE_ENV = "DATAOPS_ENGINE"
"""Environment variable choosing the engine when `--engine` is not given (`dvc repro` runs the
stage commands as written in `dvc.yaml`, so this is how a DVC run picks Beam)."""

ENGINES = ("local", "beam")


def use_beam(engine: str) -> bool:
    """True for `beam` (checking that Apache Beam is installed), False for `local`."""
    from dataops.errors import ConfigError

    if engine not in ENGINES:
        raise ConfigError(
            f"--engine / ${ENGINE_ENV}: '{engine}' is not one of {', '.join(ENGINES)}"
        )
    if engine == "local":
        return False
    from dataops.beam.runner import import_beam

    import_beam()
    return True
