#!/usr/bin/env bash
# 06 — list what is on the server and download it into a fresh local tree (verified, resumable).
#   ML_DASH_REMOTE=http://127.0.0.1:8000 ML_DASH_API_KEY=... bash examples/06_download.sh DEST
set -euo pipefail
dest="${1:-downloaded}"
ml-dash list
ml-dash download "$dest"
ml-dash download "$dest"    # again: everything is already there, nothing is fetched twice
