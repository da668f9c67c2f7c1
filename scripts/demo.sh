#!/usr/bin/env bash
# The main job end to end on the embedded default: install, log example experiments
# locally, and show what was written.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
root="${1:-.ml-dash}"
.venv/bin/python examples/01_log_locally.py "$root"
echo
echo "Local tree under $root:"
find "$root" -type f -not -path '*/files/*/*' | sort | sed 's/^/  /'
