"""docker-compose.yml is valid (Debian's `docker-compose config`, no engine needed) and has the production shape."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.support.project import REPO

COMPOSE = shutil.which("docker-compose")
# the secrets docker-compose.yml requires (no defaults), with values a test can recognize
SECRETS = {
    "AIRFLOW_UID": "1234",
    "AIRFLOW_JWT_SECRET": "jwt-from-env",
    "AIRFLOW_FERNET_KEY": "fernet-from-env",
    "AIRFLOW_DB_PASSWORD": "db-from-env",
    "_AIRFLOW_WWW_USER_PASSWORD": "admin-from-env",
    "MINIO_ROOT_USER": "s3-user-from-env",
    "MINIO_ROOT_PASSWORD": "s3-secret-from-env",
}


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    if COMPOSE is None:
        pytest.skip(
            "docker-compose not installed (Debian package `docker-compose`; `make compose-tool` installs it)"
        )
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "DATAOPS", "MINIO", "COMPOSE", "_AIRFLOW"))
    }
    return subprocess.run(
        [COMPOSE, "-f", str(REPO / "docker-compose.yml"), "config"],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    proc = compose_config(**SECRETS)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_every_secret_is_required(missing):
    proc = compose_config(**{k: v for k, v in SECRETS.items() if k != missing})
    assert proc.returncode != 0
    assert missing in proc.stderr and "set " in proc.stderr, proc.stderr


def test_no_public_default_secret_and_pinned_images(config):
    text = (REPO / "docker-compose.yml").read_text()
    for weak in ("minioadmin", "change-me", "airflow:airflow@", ":-airflow}"):
        assert weak not in text, weak
    for name, svc in config["services"].items():
        image = svc.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, (name, image)
    env = config["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-from-env"
    assert env["AWS_SECRET_ACCESS_KEY"] == "s3-secret-from-env"
    assert "db-from-env" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_init_runs_as_root_and_hands_the_checkout_to_airflow_uid(config):
    init = config["services"]["airflow-init"]
    assert init["user"] == "0:0"
    script = " ".join(init["command"])
    assert 'chown -R "$${AIRFLOW_UID}:0" /opt/airflow/project /opt/airflow/logs' in script
    assert init["environment"]["AIRFLOW_UID"] == "1234"
    others = {
        k: v
        for k, v in config["services"].items()
        if k.startswith("airflow-") and k != "airflow-init"
    }
    assert all(v["user"] == "1234:0" for v in others.values()), {
        k: v["user"] for k, v in others.items()
    }


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
        # the stages run the mounted code, the code DVC hashes
        assert env["PYTHONPATH"] == "/opt/airflow/project"
        assert "DATAOPS_GIT_REMOTE" in env and "DATAOPS_GIT_BRANCH" in env
    assert "dvc remote add --local --force --default minio" in " ".join(
        airflow["airflow-init"]["command"]
    )
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in dockerfile
    assert "uv export --frozen" in dockerfile and "--require-hashes" in dockerfile
    assert "--no-emit-project" in dockerfile, "the package comes from the mounted checkout"


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
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "no-such-service" in proc.stderr
