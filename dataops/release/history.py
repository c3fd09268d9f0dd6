"""What a published version recorded, read from git objects and the DVC cache without a checkout.

A version is an annotated tag `refs/tags/<dataset>-v<major>.<build>` whose annotation was
written by `dataops.release.publish`:

* the current format ends with the git trailers `Dataops-Dataset: <name>`,
  `Dataops-Version: v<major>.<build>` and `Dataops-Fingerprint: <64 hex>`;
* the earlier format (before the trailers) is accepted only when the whole message is exactly
  what `publish` wrote then (`LEGACY_MESSAGE`).

Anything else under `refs/tags/` — lightweight tags, tags whose name disagrees with their
annotation, foreign tags that merely look like `*-vN.N` — is not a version. Every value read
from a tag (annotation, `params.yaml`, `reports/validation.json`, `dvc.lock`, the DVC objects)
is untrusted: git is called with object ids or fully qualified ref names after
`--end-of-options`, DVC object ids are checked to be hex before they become paths, YAML
aliases and oversized files are refused, and numbers are coerced to numbers here.

`metadata.json` is DVC-tracked, so it is found through `dvc.lock` at the tag: the md5 of the
`data/tfrecords` out names a `.dir` listing in the DVC cache, which gives the md5 of
`metadata.json`, whose bytes are in the cache (or in a local-path DVC remote) under
`files/md5/<2 hex>/<30 hex>`.

Messages of the errors raised here name tags, never local paths: the Airflow plugin shows them.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from dataops import naming
from dataops.errors import DatasetError
from dataops.release.git import dvc_config
from dataops.release.tags import TRAILER_DATASET, TRAILER_FINGERPRINT, TRAILER_VERSION

DATASET_DIR = naming.DATASET_DIR
REPORT = naming.REPORT_FILE
MAX_FILE_BYTES = 4 << 20  # params.yaml, dvc.lock, validation.json, metadata.json, a .dir listing
MAX_TEXT = 500  # longest string value passed on from a version's files

VERSION_RE = re.compile(r"^v(?P<major>\d{1,9})\.(?P<build>\d{1,9})$")
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
_OID_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_TRAILER_LINE = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9-]*): ?(?P<value>.*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# The whole annotation `publish` wrote before the trailers existed (subject, blank line, body).
LEGACY_MESSAGE = re.compile(
    r"Publish (?P<dataset>[^\s:]+) (?P<version>v\d{1,9}\.\d{1,9}): [^\n]* examples, fingerprint (?P<fp12>[0-9a-f]{12})\n"
    r"\n"
    r"dataset: (?P=dataset)\n"
    r"version: (?P=version)\n"
    r"fingerprint: (?P<fingerprint>[0-9a-f]{64})\n"
    r"schema: (?P<schema>[0-9a-f]{16})\n"
    r"examples: [^\n]*\n"
    r"bytes: \d+\n"
    r"files: [^\n]*\n?"
)


@dataclass(frozen=True)
class VersionTag:
    name: str
    dataset: str
    version: str
    fingerprint: str
    commit: str
    date: str
    subject: str
    schema: str | None


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-c", "core.quotepath=off", *args],
        cwd=repo,
        input=stdin,
        capture_output=True,
        check=False,
    )


def valid_tag_name(repo: str | Path, tag: str) -> bool:
    """Whether `refs/tags/<tag>` is a well-formed ref name (`git check-ref-format`); no option, no `..`."""
    if not tag or len(tag) > 255 or _CONTROL.search(tag):
        return False
    return _git(Path(repo), "check-ref-format", f"refs/tags/{tag}").returncode == 0


def _cat_batch(repo: Path, oids: list[str]) -> dict[str, tuple[str, bytes]]:
    """Type and content of each object id (hex only; checked), in one `git cat-file --batch`."""
    oids = [o for o in dict.fromkeys(oids) if _OID_RE.match(o)]
    if not oids:
        return {}
    proc = _git(repo, "cat-file", "--batch", stdin="".join(f"{o}\n" for o in oids).encode())
    out: dict[str, tuple[str, bytes]] = {}
    data, pos = proc.stdout, 0
    for oid in oids:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        head = data[pos:nl].decode("ascii", "replace").split()
        pos = nl + 1
        if len(head) != 3 or head[1] == "missing":
            continue
        size = int(head[2])
        out[oid] = (head[1], data[pos : pos + size])
        pos += size + 1
    return out


def _split_object(raw: bytes) -> tuple[dict[str, str], str]:
    text = raw.decode("utf-8", "replace")
    head, _, message = text.partition("\n\n")
    headers: dict[str, str] = {}
    for line in head.splitlines():
        k, _, v = line.partition(" ")
        headers.setdefault(k, v)
    return headers, message


def _trailers(message: str) -> dict[str, list[str]]:
    """The `Key: value` lines of the message's last paragraph (all of its lines must be trailers)."""
    message = message.split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    paragraphs = [p for p in message.strip("\n").split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    out: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        m = _TRAILER_LINE.match(line)
        if not m:
            return {}
        out.setdefault(m["key"], []).append(m["value"].strip())
    return out


def _date(tagger: str) -> str:
    """ISO date of a `tagger Name <mail> <epoch> <+hhmm>` header ('' when unreadable)."""
    parts = tagger.rsplit(" ", 2)
    try:
        epoch, tz = int(parts[-2]), parts[-1]
        sign = -1 if tz.startswith("-") else 1
        offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])) * sign
        return datetime.fromtimestamp(epoch, timezone(offset)).isoformat()
    except (IndexError, ValueError, OverflowError, OSError):
        return ""


def _parse_tag(refname: str, raw: bytes) -> VersionTag | None:
    """The version a tag object describes, or None when the annotation is not publish's."""
    name = refname.removeprefix("refs/tags/")
    headers, message = _split_object(raw)
    if headers.get("type") != "commit" or headers.get("tag") != name:
        return None
    trailers = _trailers(message)
    keys = (TRAILER_DATASET, TRAILER_VERSION, TRAILER_FINGERPRINT)
    schema = None
    if all(len(trailers.get(k, [])) == 1 for k in keys):
        dataset, version, fingerprint = (trailers[k][0] for k in keys)
    else:
        m = LEGACY_MESSAGE.fullmatch(message)
        if not m or m["fingerprint"][:12] != m["fp12"]:
            return None
        dataset, version, fingerprint, schema = (
            m["dataset"],
            m["version"],
            m["fingerprint"],
            m["schema"],
        )
    if (
        not dataset
        or len(dataset) > 200
        or _CONTROL.search(dataset)
        or not VERSION_RE.match(version)
        or not FINGERPRINT_RE.match(fingerprint)
        or name != f"{dataset}-{version}"
    ):
        return None
    subject = message.strip("\n").split("\n\n", 1)[0].replace("\n", " ")
    return VersionTag(
        name=name,
        dataset=dataset,
        version=version,
        fingerprint=fingerprint,
        commit=headers.get("object", ""),
        date=_date(headers.get("tagger", "")),
        subject=clean_text(subject),
        schema=schema,
    )


def project_tags(repo: Path) -> list[VersionTag]:
    proc = _git(
        repo, "for-each-ref", "--format=%(refname)%00%(objecttype)%00%(objectname)", "refs/tags/"
    )
    if proc.returncode != 0:
        raise DatasetError(
            "the workspace is not a git repository; set DATAOPS_PROJECT_DIR to the project's clone"
        )
    candidates = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split("\0")
        if len(fields) == 3 and fields[1] == "tag" and _OID_RE.match(fields[2]):
            candidates.append((fields[0], fields[2]))
    objects = _cat_batch(repo, [oid for _, oid in candidates])
    tags = []
    for refname, oid in candidates:
        kind, raw = objects.get(oid, ("", b""))
        tag = _parse_tag(refname, raw) if kind == "tag" else None
        if tag and _OID_RE.match(tag.commit):
            tags.append(tag)
    return tags


def find_tag(repo: Path, tag: str) -> VersionTag:
    if not valid_tag_name(repo, tag):
        raise DatasetError(f"{clean_text(tag, 80)!r} is not a valid tag name")
    for t in project_tags(repo):
        if t.name == tag:
            return t
    raise DatasetError(f"no published version {tag!r}; the Datasets page lists the published ones")


def blob_at(repo: Path, commit: str, path: str) -> bytes | None:
    """Bytes of `path` in `commit` (an object id), None when absent or larger than MAX_FILE_BYTES."""
    if not _OID_RE.match(commit):
        return None
    proc = _git(repo, "cat-file", "-s", "--end-of-options", f"{commit}:{path}")
    if proc.returncode != 0 or int(proc.stdout or 0) > MAX_FILE_BYTES:
        return None
    proc = _git(repo, "cat-file", "blob", "--end-of-options", f"{commit}:{path}")
    return proc.stdout if proc.returncode == 0 else None


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without anchors/aliases: an alias bomb would expand when the value is serialized."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted")
        return super().compose_node(parent, index)


def parse_yaml(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return None


def parse_json(raw: bytes | None) -> Any:
    if raw is None or len(raw) > MAX_FILE_BYTES:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None


def clean_text(value: Any, limit: int = MAX_TEXT) -> str:
    """A string for display: control and bidi-override characters replaced, length capped."""
    text = _CONTROL.sub("\ufffd", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _object_dirs(repo: Path) -> list[Path]:
    """Where DVC objects may be: the cache (`cache.dir` or `.dvc/cache`) and any local-path remote."""
    dvc_dir = repo / ".dvc"
    dirs: list[Path] = []
    cp = dvc_config(dvc_dir)
    cache_dir = None
    remotes: list[str] = []
    for section in cp.sections():
        sec = section.strip("'\"")
        if sec == "cache" and cp.has_option(section, "dir"):
            cache_dir = cp.get(section, "dir")
        if sec.startswith("remote") and cp.has_option(section, "url"):
            remotes.append(cp.get(section, "url"))
    dirs.append((dvc_dir / cache_dir).resolve() if cache_dir else dvc_dir / "cache")
    for url in remotes:
        if "://" not in url:
            dirs.append((dvc_dir / url).resolve())
    return dirs


def _object(repo: Path, md5: Any, suffix: str = "") -> bytes | None:
    """A DVC object's bytes by md5 (32 hex digits, checked: it comes from a tag's files)."""
    if not isinstance(md5, str) or not _MD5_RE.match(md5):
        return None
    for base in _object_dirs(repo):
        path = base / "files" / "md5" / md5[:2] / (md5[2:] + suffix)
        if path.is_file() and path.stat().st_size <= MAX_FILE_BYTES:
            return path.read_bytes()
    return None


def _out_md5(lock: Any, out_path: str) -> str | None:
    stages = lock.get("stages") if isinstance(lock, dict) else None
    for stage in (stages or {}).values() if isinstance(stages, dict) else []:
        outs = stage.get("outs") if isinstance(stage, dict) else None
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and out.get("path") == out_path:
                md5 = out.get("md5")
                return md5 if isinstance(md5, str) else None
    return None


def metadata_at(repo: Path, commit: str) -> dict[str, Any] | None:
    md5 = _out_md5(parse_yaml(blob_at(repo, commit, "dvc.lock")), DATASET_DIR)
    if not md5 or not md5.endswith(".dir"):
        return None
    listing = parse_json(_object(repo, md5.removesuffix(".dir"), ".dir"))
    for entry in listing if isinstance(listing, list) else []:
        if isinstance(entry, dict) and entry.get("relpath") == "metadata.json":
            meta = parse_json(_object(repo, entry.get("md5")))
            return meta if isinstance(meta, dict) else None
    return None
