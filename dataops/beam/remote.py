"""A stage output written straight into a DVC remote: the Airflow worker's disk never holds it
(`--to-remote` of ingest, preprocess and serialize on Beam).

DVC 3 keeps every file of a remote under `<url>/files/md5/<first 2 hex>/<other 30 hex>` (the md5
of its bytes) and a directory as one more object, `<md5>.dir`: the JSON list of
`{"md5", "relpath"}` sorted by relpath, named by the md5 of that JSON. A stage's `dvc.lock`
entry records the directory as `md5: <md5>.dir` with its total `size` and `nfiles`; `dvc pull`
needs nothing else.

So on Beam each worker, after writing a file (a snapshot part, a split's Parquet file, a shard
and its index) into its private scratch directory, uploads it under its md5 and returns
`(relpath, md5, size)` (`upload.uploader`); the driver uploads the small files it writes itself
(`manifest.json`, `state.json`, `metadata.json`, ...: `record_with`), builds and uploads the
`.dir` object with DVC's own `Tree` (so its bytes are DVC's), removes the stage's stale
workspace copy of the output (as `dvc repro` does before it runs a stage) and writes the
stage's `dvc.lock` entry — deps and params hashed by DVC, the output from the manifest. The
entry is the one `dvc repro` writes for the same bytes; `dvc pull` then fetches them, and
`dvc repro --allow-missing` / `dvc status` in a clone see the stage as up to date.

The stage's inputs need not be in the workspace either: a dependency missing there that
another stage's `dvc.lock` entry records as a folder (`data/snapshot`, `data/preprocessed`) is
read from the remote (`input_folder`) — its `.dir` manifest, then each file's object — at that
recorded version, and recorded as the dependency's hash, as `dvc repro --allow-missing` takes
it. (Ingest reads its sources in the workspace only.)

A remote object is uploaded under its final name in one PUT (object stores show it whole or
not at all) or, on a local/shared-disk remote, written beside it and renamed; an object already
there is not uploaded again (its name is its content), so a retried worker costs no upload.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops.beam.io import exists, is_url, join
from dataops.beam.upload import FileEntry, object_path, put_object, upload_files
from dataops.errors import ConfigError, DataopsError, DatasetError

SCHEMES = ("s3", "gs")
"""Remote URL schemes Beam's filesystems reach (besides a local or shared-disk path)."""


@dataclass(frozen=True)
class RemoteInput:
    """A stage dependency that is not in the workspace: another stage's output, read from the
    remote at the version `dvc.lock` records for it (what `dvc pull` would bring)."""

    path: str
    """Its absolute path in the workspace (where it is not)."""
    def_path: str
    """As `dvc.yaml` names it."""
    md5: str
    """`<md5>.dir`, from the producing stage's `dvc.lock` entry."""
    size: int | None
    nfiles: int | None


@dataclass(frozen=True)
class RemoteTarget:
    """Where `--to-remote` sends a stage's output, checked before any work starts."""

    root: str
    """The DVC repository (absolute path)."""
    stage: str
    """The stage whose output it is, as `dvc repro` addresses it."""
    out: str
    """The output's absolute path in the workspace (it is not written there)."""
    remote: str
    """The DVC remote's name."""
    url: str
    """The remote's URL for Beam (`s3://bucket/prefix`, `gs://...` or an absolute path)."""
    options: tuple[str, ...]
    """Beam options the remote's DVC config implies (its S3 endpoint and region)."""
    inputs: tuple[RemoteInput, ...] = ()
    """The stage's dependencies missing from the workspace, read from the remote instead."""

    def input_for(self, path: str | Path) -> RemoteInput | None:
        """The remote input at the workspace path `path`, if the stage reads it from the remote."""
        full = os.path.abspath(path)  # noqa: PTH100
        return next((i for i in self.inputs if i.path == full), None)

    @property
    def objects(self) -> str:
        """The content-addressed store: `<url>/files/md5`."""
        return join(self.url, "files", "md5")

    def beam_args(self, args: Sequence[str]) -> list[str]:
        """`args` plus the remote's options that `args` does not set already — the options
        the run then uses, so the remote's store is checked with them here, before any work
        (`reach.check`: a wrong endpoint, credentials or bucket in one line, in seconds)."""
        from dataops.beam import reach

        given = {a.split("=", 1)[0] for a in args}
        merged = [*args, *(o for o in self.options if o.split("=", 1)[0] not in given)]
        reach.check([self.url], merged, f"--to-remote {self.remote}: ")
        return merged


def _import_dvc() -> Any:
    try:
        from dvc.repo import Repo
    except ImportError:
        raise ConfigError(
            "--to-remote needs DVC: install the 'dvc' extra (pip install 'dataops[s3]' for S3)"
        ) from None
    return Repo


def plan_target(out: str | Path, remote: str) -> RemoteTarget:
    """Check that `out` is a cached output of a `dvc.yaml` stage and `remote` a DVC remote that
    `dvc pull` reads it from, and that this is not a `dvc repro` run (which would hash the
    missing workspace output and fail); ConfigError naming what is wrong. The stage's
    dependencies missing from the workspace become `inputs`, read from the remote."""
    if os.environ.get("DVC_STAGE"):  # dvc.env.DVC_STAGE: set by `dvc repro` for the command
        raise ConfigError(
            f"--to-remote: running as the command of DVC stage '{os.environ['DVC_STAGE']}'; "
            "--to-remote writes the stage's dvc.lock entry itself, run it directly, not under dvc repro"
        )
    if is_url(out):
        raise ConfigError(
            f"--to-remote: --out {out} must be the stage's output path in the workspace"
        )
    Repo = _import_dvc()
    path = os.path.abspath(out)  # noqa: PTH100 — as DVC's `fs_path`: `..` folded, links kept
    start = Path(path).parent
    while not start.is_dir():
        start = start.parent
    try:
        repo = Repo(str(start))
    except Exception as e:  # dvc.exceptions.NotDvcRepoError and its kin
        raise ConfigError(f"--to-remote: {out} is not inside a DVC repository ({e})") from None
    with repo:
        stage, output = _find_output(repo, path, out)
        config = repo.config
        remotes = dict(config.get("remote", {}))
        if remote not in remotes:
            known = ", ".join(sorted(remotes)) or "none configured"
            raise ConfigError(f"--to-remote: no DVC remote named '{remote}' (remotes: {known})")
        url = _beam_url(remote, remotes[remote])
        pulled_from = output.remote or config["core"].get("remote")
        if remote != pulled_from:
            where = (
                f"its `remote: {output.remote}` in {_dvcfile(repo, stage)}"
                if output.remote
                else f"the default remote ('{pulled_from}')"
                if pulled_from
                else "the default remote (none is set: dvc remote default NAME)"
            )
            raise ConfigError(
                f"--to-remote {remote}: `dvc pull` fetches {output.def_path} from {where}, not from '{remote}'"
            )
        inputs = tuple(_remote_input(repo, stage, dep) for dep in stage.deps if not dep.exists)
        return RemoteTarget(
            root=repo.root_dir,
            stage=_label(repo, stage),
            out=path,
            remote=remote,
            url=url,
            options=_beam_options(remotes[remote]),
            inputs=inputs,
        )


def _remote_input(repo: Any, stage: Any, dep: Any) -> RemoteInput:
    """A dependency missing from the workspace, as the stage that writes it recorded it in
    `dvc.lock` (a directory); ConfigError when there is no such record."""
    made = [
        o
        for s in repo.index.stages
        for o in s.outs
        if o.fs_path == dep.fs_path and o.hash_info and o.hash_info.isdir
    ]
    if not made:
        raise ConfigError(
            f"--to-remote: {dep.def_path}, a dependency of stage '{_label(repo, stage)}', is not in the workspace "
            "and no stage's dvc.lock entry records it as a folder to read from the remote (dvc pull it first)"
        )
    out = made[0]
    return RemoteInput(
        path=dep.fs_path,
        def_path=dep.def_path,
        md5=str(out.hash_info.value),
        size=out.meta.size,
        nfiles=out.meta.nfiles,
    )


def input_files(target: RemoteTarget, inp: RemoteInput) -> dict[str, str]:
    """The files of the remote input `inp`: relative path → its object in the remote, from
    the `.dir` manifest there; DatasetError when the remote lacks it."""
    import json

    from dataops.beam.io import read_bytes

    manifest = object_path(target.objects, inp.md5)
    if not exists(manifest):
        raise DatasetError(
            f"{inp.def_path}: not in the workspace, and remote '{target.remote}' has no {inp.md5} "
            f"({manifest}): dvc push it from where it was built"
        )
    return {
        e["relpath"]: object_path(target.objects, e["md5"])
        for e in json.loads(read_bytes(manifest))
    }


@dataclass(frozen=True)
class InputFolder:
    """A folder a stage reads, file by file: under `folder` (the workspace or a URL), or —
    a dependency `--to-remote` reads from the remote — the objects of the version `dvc.lock`
    records (`input_folder`)."""

    folder: str
    producer: str
    """The stage that writes the folder, for messages."""
    objects: dict[str, str] | None = None
    """Relative path → its object in the remote; None: the files are under `folder`."""
    label: str = ""

    @property
    def local(self) -> bool:
        """Its files are under `folder` in the workspace (not at a URL, not in a remote)."""
        return self.objects is None and not is_url(self.folder)

    def __call__(self, name: str) -> str:
        """Where the folder's file `name` is."""
        if self.objects is None:
            return join(self.folder, name)
        if name not in self.objects:
            raise DatasetError(f"{self.label}: has no {name} — run the {self.producer} stage first")
        return self.objects[name]


def input_folder(folder: str | Path, target: RemoteTarget | None, producer: str) -> InputFolder:
    """The folder `folder` a stage reads: from the remote when `target` reads it from there."""
    inp = target.input_for(folder) if target is not None else None
    if target is None or inp is None:
        return InputFolder(str(folder), producer)
    label = f"{inp.def_path} ({inp.md5} in remote '{target.remote}')"
    return InputFolder(str(folder), producer, input_files(target, inp), label)


def _find_output(repo: Any, path: str, given: str | Path) -> tuple[Any, Any]:
    found = [(s, o) for s in repo.index.stages for o in s.outs if o.fs_path == path]
    if not found:
        raise ConfigError(
            f"--to-remote: {given} is not an output of any stage in {repo.root_dir}'s dvc.yaml files"
        )
    stage, output = found[0]
    if not stage.cmd or not getattr(stage, "name", None):
        raise ConfigError(f"--to-remote: {given} is not the output of a dvc.yaml stage")
    if not output.use_cache:
        raise ConfigError(
            f"--to-remote: {output.def_path} of stage '{_label(repo, stage)}' has `cache: false`; only cached outputs are pulled from a remote"
        )
    return stage, output


def _dvcfile(repo: Any, stage: Any) -> str:
    return Path(os.path.relpath(stage.path, repo.root_dir)).as_posix()


def _label(repo: Any, stage: Any) -> str:
    """The stage as `dvc repro` run from the repository root addresses it."""
    dvcfile = _dvcfile(repo, stage)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def _beam_url(name: str, conf: dict[str, Any]) -> str:
    url = str(conf.get("url", ""))
    scheme = url.partition("://")[0] if "://" in url else ""
    if conf.get("worktree") or conf.get("version_aware"):
        raise ConfigError(
            f"--to-remote {name}: a worktree/version_aware remote keeps files under their own names; "
            "--to-remote writes the content-addressed layout of a plain remote"
        )
    if scheme and scheme not in SCHEMES:
        raise ConfigError(
            f"--to-remote {name}: {url}: Beam writes to {', '.join(s + '://' for s in SCHEMES)} or a local/shared path, not {scheme}://"
        )
    return url.rstrip("/") if scheme else os.path.abspath(url)  # noqa: PTH100


def _beam_options(conf: dict[str, Any]) -> tuple[str, ...]:
    """The S3 endpoint and region of the remote's DVC config as Beam options (credentials are
    not copied: workers take them from their environment, as boto3 does)."""
    if not str(conf.get("url", "")).startswith("s3://"):
        return ()
    opts = []
    if conf.get("endpointurl"):
        opts.append(f"--s3_endpoint_url={conf['endpointurl']}")
    if conf.get("region"):
        opts.append(f"--s3_region_name={conf['region']}")
    return tuple(opts)


@dataclass(frozen=True)
class LockedOutput:
    """The output as the stage's `dvc.lock` entry records it."""

    path: str
    md5: str
    """`<md5>.dir`: the name of the manifest object in the remote."""
    size: int
    nfiles: int


def record(target: RemoteTarget, entries: Iterable[FileEntry]) -> LockedOutput:
    """Upload the `.dir` manifest of `entries` (the output's files, already in the remote),
    remove the stage's workspace copy of the output and write its `dvc.lock` entry."""
    import tempfile

    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    size = 0
    seen: set[str] = set()
    for rel, md5, n in entries:
        if rel in seen:
            raise ConfigError(f"--to-remote: two files of the output are both named {rel}")
        seen.add(rel)
        tree.add(tuple(rel.split("/")), Meta(size=n), HashInfo("md5", md5))
        size += n
    tree.digest()  # DVC's own manifest bytes and name: md5 of as_bytes() + ".dir"
    oid = str(tree.hash_info.value)
    with tempfile.TemporaryDirectory(prefix="dataops-dir-") as scratch:
        manifest = Path(scratch, "manifest")
        manifest.write_bytes(tree.as_bytes())
        put_object(manifest, object_path(target.objects, oid))

    Repo = _import_dvc()
    from dvc.lock import LockError

    try:
        with Repo(target.root) as repo, repo.lock:
            stage, output = _find_output(repo, target.out, target.out)
            stage.remove_outs(ignore_remove=False)  # the previous run's copy: stale now
            stage.save_deps(allow_missing=bool(target.inputs))
            for dep in stage.deps:  # read from the remote: the version it was read at
                inp = target.input_for(dep.fs_path)
                if inp is not None:
                    dep.hash_info = HashInfo("md5", inp.md5)
                    dep.meta = Meta(isdir=True, size=inp.size, nfiles=inp.nfiles)
            output.hash_info = HashInfo("md5", oid)
            output.meta = Meta(isdir=True, size=size, nfiles=len(seen))
            output.obj = None
            output.files = None
            output.ignore()
            stage.dump(update_pipeline=False)
    except LockError:
        raise DataopsError(
            f"{target.root}: another DVC process holds the repository lock, so the dvc.lock entry of stage "
            f"'{target.stage}' was not written; the output is in remote '{target.remote}' ({oid}): "
            "run the same command again to record it (nothing is uploaded twice)"
        ) from None
    return LockedOutput(
        path=os.path.relpath(target.out, target.root), md5=oid, size=size, nfiles=len(seen)
    )


def record_with(target: RemoteTarget, entries: Iterable[FileEntry], driver: Path) -> LockedOutput:
    """`record` the output: the workers' `entries` and the files the driver wrote into its
    local folder `driver` (`manifest.json`, `state.json`, ...), uploaded first."""
    return record(target, [*entries, *upload_files(driver, target.objects)])
