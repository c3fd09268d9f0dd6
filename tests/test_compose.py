"""docker-compose.yml is valid (Debian's `docker-compose config`, no engine needed) and has the production shape."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from airflow_helpers import REPO

COMPOSE = shutil.which("docker-compose")


@pytest.fixture(scope="module")
def config() -> dict:
    if COMPOSE is None:
        pytest.skip(
            "docker-compose not installed (Debian package `docker-compose`; `make compose-tool` installs it)"
        )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "DATAOPS", "MINIO", "COMPOSE"))
    }
    proc = subprocess.run(
        [COMPOSE, "-f", str(REPO / "docker-compose.yml"), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_file_is_valid_and_has_the_official_services(config):
    services = config["services"]
    for name in (
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
        "airflow-init",
        "minio",
    ):
        assert name in services, f"service {name} missing"
    assert services["airflow-apiserver"]["command"] in ("api-server", ["api-server"])
    assert any(
        str(p.get("published")) == "8080" and str(p.get("target")) == "8080"
        for p in services["airflow-apiserver"]["ports"]
    ) or "8080:8080" in str(services["airflow-apiserver"]["ports"])


def test_airflow_services_run_the_project_image_on_celery_with_minio_as_dvc_remote(config):
    airflow = {k: v for k, v in config["services"].items() if k.startswith("airflow-")}
    for name, svc in airflow.items():
        assert svc["build"]["dockerfile"] == "Dockerfile", name
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["DATAOPS_PROJECT_DIR"] == "/opt/airflow/project"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["DATAOPS_DVC_REMOTE_URL"].startswith("s3://")
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/project/dags"
    assert "dvc remote add --local --force --default minio" in " ".join(
        airflow["airflow-init"]["command"]
    )
    dockerfile = (REPO / "Dockerfile").read_text()
    assert (
        "FROM apache/airflow:${AIRFLOW_VERSION}" in dockerfile
        and '"/opt/dataops[s3]"' in dockerfile
    )


def test_the_check_catches_a_broken_file(config, tmp_path):
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    data["services"]["airflow-worker"]["depends_on"]["no-such-service"] = {
        "condition": "service_healthy"
    }
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [COMPOSE, "-f", str(bad), "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "no-such-service" in proc.stderr
