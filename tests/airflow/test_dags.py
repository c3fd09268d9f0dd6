"""The DAG folder and the plugin: import cleanly and cheaply, and the DAG is dvc.yaml's stage graph."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dataops.errors import ConfigError
from dataops.release.dvcgraph import edges, load_stages, parse_dvc_yaml
from tests.support.airflow import airflow_env, make_clone
from tests.support.project import REPO

HEAVY = ("tensorflow", "pyarrow", "dvc", "h5py")

_INSPECT = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    # Airflow's own modules first: the heavy-module check below is about what the DAG file
    # and the plugin add on top of them.
    import airflow.sdk, airflow.plugins_manager, fastapi, airflow.api_fastapi.core_api.security
    bag = DagBag(dag_folder=sys.argv[1])
    import importlib.util
    spec = importlib.util.spec_from_file_location("datasets_plugin", sys.argv[2])
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    dag = bag.dags.get("dataset_pipeline")
    out = {
        "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
        "dag_ids": sorted(bag.dags),
        "heavy": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY_MODULES}),
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} if dag else {},
        "params": {k: dag.params.get_param(k).dump() for k in dag.params} if dag else {},
        "max_active_runs": dag.max_active_runs if dag else None,
        "catchup": dag.catchup if dag else None,
        "tags": sorted(dag.tags) if dag else [],
        "doc_md": bool(dag and dag.doc_md),
        "retries": {t.task_id: t.retries for t in dag.tasks} if dag else {},
        "setup": sorted(t.task_id for t in dag.tasks if t.is_setup) if dag else [],
        "teardown": sorted(t.task_id for t in dag.tasks if t.is_teardown) if dag else [],
        "outlets": {t.task_id: [a.uri for a in t.outlets] for t in dag.tasks} if dag else {},
        "schedule": str(dag.schedule) if dag else None,
    }
    print("RESULT " + json.dumps(out, default=str))
    """
).replace("HEAVY_MODULES", repr(HEAVY))


def inspect(workspace: Path, tmp: Path, **env: str) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _INSPECT,
            str(workspace / "dags"),
            str(REPO / "plugins" / "datasets_plugin.py"),
        ],
        env=airflow_env(tmp / "airflow-home", workspace, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def repo_dag(tmp_path_factory) -> dict:
    return inspect(REPO, tmp_path_factory.mktemp("dags"))


def test_dag_folder_imports_without_errors_or_heavy_modules(repo_dag):
    assert repo_dag["import_errors"] == {}
    assert repo_dag["dag_ids"] == ["dataset_pipeline"]
    assert repo_dag["heavy"] == [], f"imported at parse time: {repo_dag['heavy']}"


def test_dag_structure_is_the_dvc_stage_graph(repo_dag):
    stages = load_stages(REPO / "dvc.yaml")
    expected = {s.name: sorted(s.upstream) or ["apply_params"] for s in stages}
    expected["apply_params"] = []
    expected["publish"] = ["validate"]
    expected["restore_workspace"] = ["apply_params", "publish"]
    assert repo_dag["upstream"] == expected
    assert repo_dag["teardown"] == ["restore_workspace"] and repo_dag["setup"] == ["apply_params"]
    # and that graph is the pipeline the README describes
    assert edges(stages) == {
        ("sample", "ingest"),
        ("ingest", "preprocess"),
        ("preprocess", "serialize"),
        ("serialize", "validate"),
    }


def test_dag_settings(repo_dag):
    assert repo_dag["max_active_runs"] == 1
    assert repo_dag["catchup"] is False
    assert repo_dag["doc_md"]
    assert {"dataops", "dvc"} <= set(repo_dag["tags"])
    assert all(r >= 1 for t, r in repo_dag["retries"].items() if t != "apply_params"), repo_dag[
        "retries"
    ]
    assert repo_dag["retries"]["apply_params"] == 0
    assert repo_dag["outlets"]["publish"] == ["dataops://sample/"]
    assert repo_dag["schedule"] == "None"


def test_trigger_form_params_come_from_params_yaml(repo_dag):
    params = repo_dag["params"]
    current = yaml.safe_load((REPO / "params.yaml").read_text())
    n = params["sample__num_examples"]
    assert n["value"] == current["sample"]["num_examples"]
    assert n["schema"]["type"] == "integer" and n["schema"]["minimum"] == 1
    assert params["serialize__compression"]["schema"]["enum"] == ["none", "gzip", "zlib"]
    assert params["serialize__num_shards"]["schema"]["type"] == ["integer", "null"]
    assert params["preprocess__split__ratios__train"]["schema"]["type"] == "number"
    assert params["validate__allow_nan"]["schema"]["type"] == "boolean"
    assert params["dataset__name"]["schema"]["title"] == "dataset.name"
    assert not any(k.startswith("ingest__sources") for k in params), "lists are not form fields"


def test_a_new_stage_in_dvc_yaml_is_a_new_task(tmp_path):
    clone = make_clone(tmp_path / "proj")
    dvc = yaml.safe_load((clone / "dvc.yaml").read_text())
    dvc["stages"]["stats"] = {
        "cmd": "dataops info data/tfrecords",
        "deps": ["data/tfrecords/metadata.json"],
        "outs": ["reports/stats.txt"],
    }
    (clone / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    got = inspect(clone, tmp_path, DATAOPS_SCHEDULE="@daily")
    assert got["upstream"]["stats"] == ["serialize"]  # dep inside an out of serialize
    assert got["upstream"]["publish"] == ["stats", "validate"]  # both are last stages
    assert got["schedule"] == "@daily"


def test_form_defaults_are_the_committed_params_not_a_runs_leftovers(tmp_path):
    """A run that failed may leave params.yaml modified: the form (and the DAG version) ignore it,
    and parsing reads no Airflow Variable (no metadata DB exists here at all)."""
    clone = make_clone(tmp_path / "proj", num_examples=120)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["sample"]["num_examples"] = 7
    params["dataset"]["name"] = "leftover"
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # a Variable would set a schedule; parsing must not read it (only $DATAOPS_SCHEDULE counts)
    got = inspect(clone, tmp_path, DATAOPS_SCHEDULE="", AIRFLOW_VAR_DATAOPS_SCHEDULE="@hourly")
    assert got["import_errors"] == {} and got["schedule"] == "None"
    assert got["params"]["sample__num_examples"]["value"] == 120
    assert got["params"]["dataset__name"]["value"] == "sample"
    assert got["outlets"]["publish"] == ["dataops://sample/"]


def test_graph_edges_follow_path_containment():
    stages = parse_dvc_yaml(
        {
            "stages": {
                "a": {"cmd": "x", "outs": ["data/out"]},
                "b": {
                    "cmd": "x",
                    "deps": ["data/out/part.txt"],
                    "outs": [{"data/b": {"cache": False}}],
                },
                "c": {"cmd": "x", "deps": ["data"], "metrics": [{"m.json": {"cache": False}}]},
                "d": {"cmd": "x", "deps": ["m.json", "data/outside"]},
            }
        }
    )
    assert edges(stages) == {("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")}


def test_graph_cycle_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"stages form a cycle: a -> b -> a|stages form a cycle: b -> a -> b"
    ):
        parse_dvc_yaml(
            {
                "stages": {
                    "a": {"cmd": "x", "deps": ["y"], "outs": ["x"]},
                    "b": {"cmd": "x", "deps": ["x"], "outs": ["y"]},
                }
            }
        )


def test_graph_missing_cmd_names_the_stage():
    with pytest.raises(ConfigError, match=r"dvc.yaml: stage 'a' has no 'cmd'"):
        parse_dvc_yaml({"stages": {"a": {"deps": ["x"]}}})
