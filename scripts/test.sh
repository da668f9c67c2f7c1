#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite (lint, schemas, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check ml_dash tests bench examples
.venv/bin/python -m ml_dash.schemas --check
exec .venv/bin/python -m pytest -q "$@"
