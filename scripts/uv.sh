#!/usr/bin/env bash
# Run uv; when it is missing, install it with pip into .tools/ first (pip's --target works
# even where the system Python is "externally managed", as on Debian).
set -euo pipefail
PY=${PYTHON:-python3}
here="$(cd "$(dirname "$0")/.." && pwd)"
if command -v uv >/dev/null 2>&1; then exec uv "$@"; fi
if "$PY" -m uv --version >/dev/null 2>&1; then exec "$PY" -m uv "$@"; fi
if [ ! -x "$here/.tools/bin/uv" ]; then
  echo "uv not found: installing it with pip into .tools/" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check --target "$here/.tools" uv
fi
exec "$here/.tools/bin/uv" "$@"
