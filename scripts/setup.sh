#!/usr/bin/env bash
# Sets up .venv/ with Python 3.12 and the dependencies pinned in uv.lock. Idempotent: a second run
# only checks that the environment matches the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8

find_python() {
  local p
  if command -v pyenv >/dev/null 2>&1; then
    p=$(PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null || true)
    if [ -n "$p" ] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$p"; return
    fi
  fi
  for p in python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$p"; return
    fi
  done
  echo "setup: Python 3.12 not found (tried 'PYENV_VERSION=3.12.1 pyenv which python3.12' and python3.12)." >&2
  echo "setup: install Python 3.12 (for example 'pyenv install 3.12.1') and run this again." >&2
  exit 1
}

PY=$(find_python)

# uv lives in its own small environment so that syncing .venv never removes it.
if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$PY" -m venv .tools
  .tools/bin/pip install --quiet "uv==$UV_VERSION"
fi

UV_PROJECT_ENVIRONMENT=.venv .tools/bin/uv sync --frozen --quiet --python "$PY"
