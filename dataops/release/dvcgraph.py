"""The stage graph of `dvc.yaml`, read as plain YAML (no DVC import): stages, deps, outs, edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dataops.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    """One stage of `dvc.yaml`: its name, command, and the paths it reads and writes."""

    name: str
    cmd: str
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    upstream: tuple[str, ...] = field(
        default=(), metadata={"doc": "Stages whose outs this stage depends on."}
    )


def _paths(entries: Any, where: str) -> tuple[str, ...]:
    """Paths of a `deps`/`outs`/`metrics`/`plots` list: strings or one-key mappings."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list, got {type(entries).__name__}")
    out: list[str] = []
    for e in entries:
        if isinstance(e, str):
            out.append(e)
        elif isinstance(e, dict) and len(e) == 1:
            out.append(str(next(iter(e))))
        else:
            raise ConfigError(f"{where}: cannot read entry {e!r}")
    return tuple(_norm(p) for p in out)


def _norm(path: str) -> str:
    return str(PurePosixPath(path.rstrip("/")))


def _overlaps(a: str, b: str) -> bool:
    """True when path `a` is `b`, contains `b`, or is contained in `b`."""
    pa, pb = PurePosixPath(a), PurePosixPath(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def parse_dvc_yaml(data: Any, where: str = "dvc.yaml") -> list[Stage]:
    """The stages of a parsed `dvc.yaml`, in file order, each with its upstream stages."""
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise ConfigError(f"{where}: expected a mapping with a 'stages' mapping")
    raw: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = []
    for name, spec in data["stages"].items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: stage {name!r} is not a mapping")
        if "foreach" in spec or "matrix" in spec:
            raise ConfigError(
                f"{where}: stage {name!r} uses foreach/matrix, which the DAG generator does not expand"
            )
        cmd = spec.get("cmd")
        if isinstance(cmd, list):
            cmd = " && ".join(str(c) for c in cmd)
        if not isinstance(cmd, str):
            raise ConfigError(f"{where}: stage {name!r} has no 'cmd'")
        deps = _paths(spec.get("deps"), f"{where}: stage {name!r} deps")
        outs = tuple(
            p
            for key in ("outs", "metrics", "plots")
            for p in _paths(spec.get(key), f"{where}: stage {name!r} {key}")
        )
        raw.append((str(name), cmd, deps, outs))
    stages = []
    for name, cmd, deps, outs in raw:
        upstream = tuple(
            other
            for other, _, _, o_outs in raw
            if other != name and any(_overlaps(d, o) for d in deps for o in o_outs)
        )
        stages.append(Stage(name=name, cmd=cmd, deps=deps, outs=outs, upstream=upstream))
    _check_acyclic(stages, where)
    return stages


def _check_acyclic(stages: list[Stage], where: str) -> None:
    by_name = {s.name: s for s in stages}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ConfigError(f"{where}: stages form a cycle: {' -> '.join([*trail, name])}")
        state[name] = 1
        for up in by_name[name].upstream:
            visit(up, [*trail, name])
        state[name] = 2

    for s in stages:
        visit(s.name, [])


def load_stages(path: str | Path) -> list[Stage]:
    """Read `dvc.yaml` at `path` and return its stages with their upstream stages."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_dvc_yaml(data, str(path))


def edges(stages: list[Stage]) -> set[tuple[str, str]]:
    """The (upstream, downstream) pairs of the graph."""
    return {(up, s.name) for s in stages for up in s.upstream}


def sinks(stages: list[Stage]) -> list[str]:
    """Stages no other stage depends on (the last ones to run)."""
    used = {up for s in stages for up in s.upstream}
    return [s.name for s in stages if s.name not in used]
