#!/usr/bin/env bash
# Run uv at the version this project pins (UV_VERSION; uv.lock is written by it). A uv on PATH
# or in the interpreter is used when it is that version; otherwise the pinned one is installed
# with pip into .tools/ (pip's --target works even where the system Python is "externally
# managed", as on Debian).
set -euo pipefail
UV_VERSION=0.13.9
PY=${PYTHON:-python3}
here="$(cd "$(dirname "$0")/.." && pwd)"
is_pinned() { [ "$("$@" --version 2>/dev/null | awk '{print $2}')" = "$UV_VERSION" ]; }
if command -v uv >/dev/null 2>&1 && is_pinned uv; then exec uv "$@"; fi
if is_pinned "$PY" -m uv; then exec "$PY" -m uv "$@"; fi
if ! is_pinned "$here/.tools/bin/uv"; then
  echo "uv $UV_VERSION not found: installing it with pip into .tools/" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade --target "$here/.tools" "uv==$UV_VERSION"
fi
exec "$here/.tools/bin/uv" "$@"
