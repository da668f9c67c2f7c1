#!/usr/bin/env bash
# The main job end to end on the embedded default (SQLite + a blob directory):
# install, start `ml-dash serve` on 127.0.0.1, log example experiments locally,
# upload them, show the summary, upload again (nothing is sent twice), print the dashboard URL of
# the uploaded experiments, stop the server (with --serve: keep it up until Ctrl-C).
#   bash scripts/demo.sh [--serve] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
serve=0
if [ "${1:-}" = "--serve" ]; then serve=1; shift; fi
bash scripts/setup.sh
work="${1:-.demo}"
rm -rf "$work" && mkdir -p "$work"
export ML_DASH_CONFIG_DIR="$PWD/$work/home"   # keep the demo away from your ~/.ml-dash
bin=.venv/bin

"$bin/ml-dash" serve --port 0 --data-dir "$work/server" > "$work/server.out" 2> "$work/server.log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/server.out" | head -1)
echo "== server: $(cat "$work/server.out")"

key=$("$bin/ml-dash" serve token create demo --namespace demo --data-dir "$work/server" 2>/dev/null)
echo "== logging example experiments locally (no network)"
"$bin/python" examples/01_log_locally.py "$work/.ml-dash"

echo "== ml-dash upload"
ML_DASH_API_KEY="$key" "$bin/ml-dash" upload "$work/.ml-dash" --remote "$url"
echo "== again: only what is missing is sent (here: nothing)"
ML_DASH_API_KEY="$key" "$bin/ml-dash" upload "$work/.ml-dash" --remote "$url" --dry-run | tail -8
dashboard=$(grep -o 'http://127.0.0.1:[0-9]*/?token=[^ ]*' "$work/server.out" | head -1)
echo "== dashboard of the uploaded experiments (the link logs you in as the server's owner):"
echo "$dashboard#/ns/demo/p/image-classification"
if [ "$serve" = 1 ]; then
  echo "== serving until Ctrl-C"
  wait "$server_pid" || true
fi
