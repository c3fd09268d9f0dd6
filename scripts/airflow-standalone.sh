#!/usr/bin/env bash
# `make airflow`: Airflow 3 standalone (SQLite, one machine) with this project's dags/ and plugins/.
# Prints the URL and the login once the API server answers; Ctrl-C stops everything it started.
#
# Environment (all optional):
#   AIRFLOW_HOME          default: <repo>/airflow-home (git-ignored; holds airflow.db, logs, the password file)
#   AIRFLOW_PORT          default: 8080
#   DATAOPS_PROJECT_DIR   the DVC/git workspace the DAG runs in and publishes from; default: <repo>
#   DATAOPS_SCHEDULE      cron or preset for dataset_pipeline; default: none (manual runs)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$REPO/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO/airflow-home}"
PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://localhost:$PORT}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
export DATAOPS_PROJECT_DIR="${DATAOPS_PROJECT_DIR:-$REPO}"
export DVC_NO_ANALYTICS=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0
mkdir -p "$AIRFLOW_HOME"

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is already in use; set AIRFLOW_PORT to another port" >&2
    exit 2
fi

LOG="$AIRFLOW_HOME/standalone.log"
echo "Starting Airflow standalone: AIRFLOW_HOME=$AIRFLOW_HOME, workspace=$DATAOPS_PROJECT_DIR (log: $LOG)"
airflow standalone >"$LOG" 2>&1 &
PID=$!
stop() { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap 'stop; exit 130' INT TERM

PWFILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 180); do
    kill -0 "$PID" 2>/dev/null || { echo "airflow standalone exited; last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
    if [ -s "$PWFILE" ] && python - "$PORT" <<'EOF' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v2/monitor/health", timeout=2)
EOF
    sleep 1
done
PASSWORD="$(python -c 'import json,sys; print(json.load(open(sys.argv[1])).get("admin", "?"))' "$PWFILE" 2>/dev/null || echo '?')"
cat <<EOF

  Airflow UI:  http://localhost:$PORT
  Login:       admin / $PASSWORD      (from $PWFILE)
  DAG:         dataset_pipeline  (Trigger → form with the params.yaml keys)
  Datasets:    "Datasets" in the left navigation: http://localhost:$PORT/plugin/datasets
               (JSON API: http://localhost:$PORT/dataops/api/versions)

Ctrl-C stops Airflow. Log: $LOG
EOF
wait "$PID"
