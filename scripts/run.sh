#!/usr/bin/env bash
# Sets up .venv/ (Python 3.12, dependencies from uv.lock) and starts klaswacht on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/klaswacht run "$@"
