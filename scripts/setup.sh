#!/usr/bin/env bash
# Installs everything the project needs into venvs inside the repo (idempotent, fast when done):
#   .venv                   ml-dash (editable) with its dev tools
#   .venv-ml-dash-0.5.8     the real ml-dash 0.5.8 client, the compatibility peer (also named ml_dash)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp=".venv/.ml-dash-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.ml-dash-installed-* && touch "$stamp"
fi

if [ ! -f .venv-ml-dash-0.5.8/.installed ]; then
  rm -rf .venv-ml-dash-0.5.8
  "$PY" -m venv .venv-ml-dash-0.5.8
  # --no-deps: 0.5.8's video dependencies are heavy and unused here.
  .venv-ml-dash-0.5.8/bin/python -m pip install -q --no-deps ml-dash==0.5.8
  .venv-ml-dash-0.5.8/bin/python -m pip install -q httpx pyjwt rich
  touch .venv-ml-dash-0.5.8/.installed
fi
