# The image every Airflow service of docker-compose.yml runs: the official Airflow image (pinned)
# plus this project's dependencies, installed exactly as uv.lock pins them (dvc, dvc-s3,
# TensorFlow, ...). The `dataops` package itself is NOT baked in: the checkout is mounted at
# /opt/airflow/project and is on PYTHONPATH, so the stages run exactly the code DVC hashes.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
ARG PYTHON_VERSION
ARG UV_VERSION=0.13.9

USER root
# git: publish commits, tags and pushes; the image may not ship it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow

# uv.lock -> requirements with hashes (the project itself left out; the lock pins apache-airflow
# to the image's version), installed with --require-hashes, then `pip check` against what the
# image already holds (its providers: celery, postgres, redis, fab): a conflict fails the build.
COPY --chown=airflow:root pyproject.toml uv.lock /opt/dataops/
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
 && cd /opt/dataops \
 && uv export --frozen --no-dev --extra s3 --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
 && grep -q "^apache-airflow==${AIRFLOW_VERSION} " /tmp/requirements.txt \
 && pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt \
 && pip check \
 && rm /tmp/requirements.txt

# The `dataops` command the DVC stages call, resolving the package from PYTHONPATH (the checkout).
RUN mkdir -p /home/airflow/.local/bin \
 && printf '#!/usr/bin/env python\nimport sys\nfrom dataops.cli import main\nsys.exit(main())\n' > /home/airflow/.local/bin/dataops \
 && chmod 755 /home/airflow/.local/bin/dataops

ENV DATAOPS_PROJECT_DIR=/opt/airflow/project \
    PYTHONPATH=/opt/airflow/project \
    DVC_NO_ANALYTICS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONHASHSEED=0
