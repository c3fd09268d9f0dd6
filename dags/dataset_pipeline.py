"""
# dataset_pipeline

The `dataops` DVC pipeline as an Airflow DAG, **generated from `dvc.yaml`**: one task per DVC
stage, wired the way DVC's own graph is (a stage runs after every stage whose outs it depends
on). Adding a stage to `dvc.yaml` adds a task here; nothing in `dags/` changes.

* **apply_params** — the workspace's `params.yaml`, `dvc.lock` and validation report are first
  put back as committed (the last published state), then the run's trigger-form values are
  validated with `dataops.config` and written into `params.yaml`. Invalid values, or a dataset
  name git cannot use in a tag, fail this task at once with the message; values never reach a
  command line.
* **one task per stage** — `dvc repro --single-item <stage>` in the workspace (an argument
  list, no shell), output streamed into the task log. DVC's repository lock is waited for.
* **publish** — one transaction (`dataops.release.publish`): `dvc push`, a git commit of `params.yaml`,
  `dvc.lock` and `reports/validation.json` (or none, when they are as committed), an annotated
  tag `<dataset>-v<major>.<build>`, `git push` of commit and tag to the team's git remote, and an
  event on the dataset's Asset whose `extra` tells a consumer everything (dataset, version, tag,
  commit, fingerprint, examples per split, git and DVC remote URLs, a ready `dataops.load(...)`
  call). A fingerprint already published ends the task *skipped*, saying which tag holds it.
  A failure at any step is rolled back; a retry completes or repeats the publish.
* **restore_workspace** (teardown) — after every run, `params.yaml`, `dvc.lock` and the report
  are put back as committed at HEAD (after a publish: that version), so a failed or cancelled
  run leaves nothing behind for the next one.

Failures that a retry cannot fix (a config error, bad data, a failed validation: exit 2 or 1)
fail the task at once; the DVC lock, the network and a refused push keep their retries.

Configuration (environment of the workers; the publish task also reads the Airflow Variables
`dataops_git_remote` / `dataops_git_branch` at run time): `DATAOPS_PROJECT_DIR` (workspace;
default the repository holding `dags/`), `DATAOPS_GIT_REMOTE` (a git remote name or URL; unset =
versions stay local), `DATAOPS_GIT_BRANCH` (default: the checked-out branch), `DATAOPS_SCHEDULE`
(cron or preset; unset or `none` = manual runs only). One run at a time: the workspace has one
writer. The trigger form's defaults are `params.yaml` as committed at HEAD, read with `git show`.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, dag, task

from dataops.airflow.params import tunable_keys
from dataops.release.dvcgraph import load_stages, sinks
from dataops.release.workspace import committed_params

WORKSPACE = Path(
    os.environ.get("DATAOPS_PROJECT_DIR") or Path(__file__).resolve().parent.parent
).resolve()
DAG_ID = "dataset_pipeline"
log = logging.getLogger("dataops.dag")


def _schedule() -> str | None:
    """`$DATAOPS_SCHEDULE` (no Variable lookup at parse time: that would hit the metadata DB on every parse)."""
    value = (os.environ.get("DATAOPS_SCHEDULE") or "").strip()
    return None if value.lower() in ("", "none", "null") else value


def _form(params: dict) -> dict[str, Param]:
    """One trigger-form field per tunable key of the committed params.yaml (not the workspace's:
    a run may have modified it), so the DAG changes only when code or published params change."""
    fields = {}
    for key in tunable_keys(params):
        kwargs = dict(key.schema)
        fields[key.name] = Param(
            default=key.value,
            title=key.dotted,
            section=f"params.yaml: {key.path[0]}",
            **kwargs,
        )
    return fields


STAGES = load_stages(WORKSPACE / "dvc.yaml")
PARAMS = committed_params(WORKSPACE)
DATASET = str((PARAMS.get("dataset") or {}).get("name", "dataset"))
DATASET_ASSET = Asset(name=f"dataops-{DATASET}", uri=f"dataops://{DATASET}")


def _fail_fast(err: Exception) -> None:
    """Raise AirflowFailException (no retry) when a retry cannot help; else re-raise `err` (retried)."""
    from airflow.sdk.exceptions import AirflowFailException

    from dataops.release.dvc import is_retryable

    if not is_retryable(err):
        raise AirflowFailException(f"{type(err).__name__}: {err}") from None
    raise err


def _git_target_settings() -> tuple[str | None, str | None]:
    """The git remote and branch to publish to: env first, then Airflow Variables — read at run time."""
    remote = os.environ.get("DATAOPS_GIT_REMOTE")
    branch = os.environ.get("DATAOPS_GIT_BRANCH")
    if remote is None or branch is None:
        from airflow.sdk import Variable

        remote = remote if remote is not None else Variable.get("dataops_git_remote", default=None)
        branch = branch if branch is not None else Variable.get("dataops_git_branch", default=None)
    return remote or "", branch or None


@dag(
    dag_id=DAG_ID,
    schedule=_schedule(),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dataops", "dvc", "tfrecords"],
    params=_form(PARAMS),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "execution_timeout": timedelta(hours=6),
    },
)
def dataset_pipeline() -> None:
    @task(task_id="apply_params", retries=0)
    def apply_params(**context) -> list[str]:
        """Write the run's form values into params.yaml (validated first)."""
        from airflow.sdk.exceptions import AirflowFailException

        from dataops.airflow.params import apply_overrides, overrides_from_conf
        from dataops.errors import ConfigError
        from dataops.release.tags import check_tag_name
        from dataops.release.workspace import restore_workspace

        restore_workspace(WORKSPACE, log=log.info)  # start from the last published state
        conf = dict(context["dag_run"].conf or {})
        try:
            overrides = overrides_from_conf(conf, WORKSPACE)
            name = overrides.get(("dataset", "name"), DATASET)
            check_tag_name(WORKSPACE, str(name))
            changes = apply_overrides(WORKSPACE, overrides)
        except ConfigError as err:
            raise AirflowFailException(f"params refused, params.yaml unchanged:\n{err}") from None
        for line in changes or ["no parameter changed; params.yaml is as it was"]:
            log.info("params.yaml %s", line)
        return changes

    def stage_task(name: str):
        @task(task_id=name)
        def run() -> str:
            from dataops.release.dvc import run_stage

            try:
                run_stage(name, WORKSPACE, log=log.info)
            except Exception as err:
                _fail_fast(err)
            return name

        run.__doc__ = f"`dvc repro --single-item {name}`"
        return run()

    @task(task_id="publish", outlets=[DATASET_ASSET])
    def publish(**context) -> dict:
        """dvc push, git commit + tag + push, Asset event; skipped when the fingerprint is already published."""
        from airflow.sdk.exceptions import AirflowSkipException

        from dataops.release.publish import publish as do_publish

        remote, branch = _git_target_settings()
        try:
            result = do_publish(WORKSPACE, log=log.info, remote=remote, branch=branch)
        except Exception as err:
            _fail_fast(err)
        if not result.published:
            started = context["dag_run"].start_date
            resumed = (
                started is not None
                and result.tag_time is not None
                and result.tag_time >= int(started.timestamp())
            )
            if not resumed:
                raise AirflowSkipException(result.message)
            # an earlier try of this run published it and was lost before the event: send it now
            log.info(
                "%s was published by an earlier try of this run: sending its event", result.tag
            )
        context["outlet_events"][DATASET_ASSET].extra = result.asset_extra()
        return result.asset_extra()

    @task(task_id="restore_workspace", retries=1)
    def restore_workspace() -> list[str]:
        """Put params.yaml, dvc.lock and the report back as committed (the last published state)."""
        from dataops.release.workspace import restore_workspace as restore

        return restore(WORKSPACE, log=log.info)

    first = apply_params()
    tasks = {s.name: stage_task(s.name) for s in STAGES}
    for s in STAGES:
        if s.upstream:
            for up in s.upstream:
                tasks[up] >> tasks[s.name]
        else:
            first >> tasks[s.name]
    last = publish()
    for name in sinks(STAGES):
        tasks[name] >> last
    last >> restore_workspace().as_teardown(setups=first)


DAG = dataset_pipeline()
