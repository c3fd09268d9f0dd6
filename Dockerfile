# The image every service of docker-compose.yml runs: the official Airflow 3.3 image plus this
# project (the `dataops` package with DVC, TensorFlow and the S3 remote support of dvc-s3).
# The project checkout itself (dags/, plugins/, dvc.yaml, params.yaml, .git) is mounted at
# /opt/airflow/project: the DAG runs and publishes in that git workspace.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

USER root
# git: publish commits and tags; the image may not ship it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root pyproject.toml README.md /opt/dataops/
COPY --chown=airflow:root dataops /opt/dataops/dataops
# Keep the Airflow that ships with the image: the project pins the same version. `all`: the
# pipeline (the CLI the DAG calls), DVC with S3, Airflow; the core brings `tensorflow`.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/dataops[all]"

ENV DATAOPS_PROJECT_DIR=/opt/airflow/project \
    DVC_NO_ANALYTICS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONHASHSEED=0
