#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite (lint, schemas, JS unit tests, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check ml_dash tests bench examples
.venv/bin/python -m ml_dash.schemas --check
# The dashboard's pure logic (node's own test runner; the browser tests run under pytest).
(cd ml_dash/server/ui && node --test --test-reporter=spec test/*.test.mjs)
exec .venv/bin/python -m pytest -q "$@"
