"""
# dataset_pipeline

The `dataops` DVC pipeline as an Airflow DAG, **generated from `dvc.yaml`**: one task per DVC
stage, wired the way DVC's own graph is (a stage runs after every stage whose outs it depends
on). Adding a stage to `dvc.yaml` adds a task here; nothing in `dags/` changes.

* **apply_params** — the run's trigger-form values (the tunable keys of `params.yaml`) are
  validated with `dataops.config` and written into `params.yaml` in the workspace. Invalid
  values fail this task with the validation message; values never reach a command line.
* **one task per stage** — `dvc repro --single-item <stage>` in the workspace (an argument
  list, no shell), output streamed into the task log. DVC's repository lock is waited for.
* **publish** — after validation passed: `dvc push`, a git commit of `params.yaml`,
  `dvc.lock` and `reports/validation.json`, a tag `<dataset>-v<major>.<build>`, and an event
  on the dataset's Asset (`extra`: commit, tag, fingerprint, examples per split). When
  nothing changed it commits nothing, tags nothing, and ends *skipped* saying so.

Workspace: `$DATAOPS_PROJECT_DIR` (default: the repository holding this `dags/` folder).
Schedule: `$DATAOPS_SCHEDULE` or the Airflow Variable `dataops_schedule` (cron or preset;
unset or `none` = manual runs only). One run at a time: the workspace has one writer.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, dag, task

from dataops.airflow_params import form_fields, read_params_data
from dataops.dvcgraph import load_stages, sinks

WORKSPACE = Path(
    os.environ.get("DATAOPS_PROJECT_DIR") or Path(__file__).resolve().parent.parent
).resolve()
DAG_ID = "dataset_pipeline"
log = logging.getLogger("dataops.dag")


def _schedule() -> str | None:
    value = os.environ.get("DATAOPS_SCHEDULE")
    if value is None:
        try:
            from airflow.sdk import Variable

            value = Variable.get("dataops_schedule", default=None)
        except Exception:  # no Airflow backend reachable (plain import): manual runs only
            value = None
    value = (value or "").strip()
    return None if value.lower() in ("", "none", "null") else value


STAGES = load_stages(WORKSPACE / "dvc.yaml")
DATASET = str(read_params_data(WORKSPACE).get("dataset", {}).get("name", "dataset"))
DATASET_ASSET = Asset(name=f"dataops-{DATASET}", uri=f"dataops://{DATASET}")


@dag(
    dag_id=DAG_ID,
    schedule=_schedule(),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dataops", "dvc", "tfrecords"],
    params={name: Param(**kwargs) for name, kwargs in form_fields(WORKSPACE).items()},
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

        from dataops.airflow_params import apply_overrides, overrides_from_conf
        from dataops.errors import ConfigError

        conf = dict(context["dag_run"].conf or {})
        try:
            changes = apply_overrides(WORKSPACE, overrides_from_conf(conf, WORKSPACE))
        except ConfigError as err:
            raise AirflowFailException(f"params refused, params.yaml unchanged:\n{err}") from None
        for line in changes or ["no parameter changed; params.yaml is as it was"]:
            log.info("params.yaml %s", line)
        return changes

    def stage_task(name: str):
        @task(task_id=name)
        def run() -> str:
            from dataops.airflow_tasks import run_stage

            run_stage(name, WORKSPACE, log=log.info)
            return name

        run.__doc__ = f"`dvc repro --single-item {name}`"
        return run()

    @task(task_id="publish", outlets=[DATASET_ASSET])
    def publish(**context) -> dict:
        """dvc push, git commit + tag, Asset event; skipped when nothing changed."""
        from airflow.sdk.exceptions import AirflowSkipException

        from dataops.publish import publish as do_publish

        result = do_publish(WORKSPACE, log=log.info)
        if not result.published:
            raise AirflowSkipException(result.message)
        context["outlet_events"][DATASET_ASSET].extra = result.asset_extra()
        return result.asset_extra()

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


DAG = dataset_pipeline()
