"""
# train_on_new_version

A downstream DAG: it runs whenever `dataset_pipeline` publishes a version of the dataset, and
loads that version using **only what the Asset event carries** — no workspace path, no
hard-coded repository. Copy it into your DAG folder (set `DATAOPS_DATASET` if the dataset is
not `sample`).

The event's `extra` (see `dataops.release.publish.PublishResult.asset_extra`): `dataset`, `version`,
`tag`, `commit`, `fingerprint`, `num_examples` (per split), `git_remote` (None when the
producer publishes locally only; then `workspace` is the repository), `git_branch`,
`dvc_remote`, and `load`, a ready `dataops.load(...)` call string.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, dag, task

DATASET = os.environ.get("DATAOPS_DATASET", "sample")
DATASET_ASSET = Asset(name=f"dataops-{DATASET}", uri=f"dataops://{DATASET}")


def load_from_event(extra: dict[str, Any], split: str = "train") -> dict[str, Any]:
    """Load `split` of the version an event announces (git remote + tag; DVC fetches the bytes from
    the remote the tag's `.dvc/config` names) and check it against the event's own numbers."""
    import dataops  # heavy (TensorFlow): imported when the task runs, never at parse time

    repo = extra["git_remote"] or extra["workspace"]
    ds = dataops.load(extra["tag"], split, repo=repo, features=["id"], batch_size=256)
    n = sum(int(batch["id"].shape[0]) for batch in ds)
    if n != extra["num_examples"][split]:
        raise ValueError(
            f"{extra['tag']} split {split!r}: the event says {extra['num_examples'][split]} examples, loaded {n}"
        )
    return {"tag": extra["tag"], "fingerprint": extra["fingerprint"], "split": split, "examples": n}


@dag(schedule=[DATASET_ASSET], catchup=False, doc_md=__doc__, tags=["dataops", "consumer"])
def train_on_new_version() -> None:
    @task(retries=2)
    def load_version(**context) -> dict[str, Any]:
        events = context["triggering_asset_events"][DATASET_ASSET]
        return load_from_event(dict(events[-1].extra))

    load_version()


DAG = train_on_new_version()
