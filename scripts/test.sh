#!/usr/bin/env bash
# The whole test suite: lint, types, tests with branch coverage of filters/. Sets up .venv/ first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check filters klaswacht proxy dashboards tests bench
.venv/bin/mypy
# The slowest tests are listed: the suite must stay under 15 minutes in CI.
.venv/bin/pytest --cov --cov-report=term-missing:skip-covered --durations=15 "$@"
