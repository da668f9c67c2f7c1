#!/usr/bin/env bash
# Installs everything the project needs into venvs inside the repo (idempotent, fast when done):
#   .venv                   ml-dash (editable) with its dev tools
#   .venv-ml-dash-0.5.8     the real ml-dash 0.5.8 client, the compatibility peer (also named ml_dash)
#   ml_dash/server/ui/dist  the dashboard, built with node/npm (uPlot + esbuild pinned in its lockfile)
#   /usr/bin/chromium, /usr/bin/chromedriver  Debian's, for the browser tests (as root with apt-get)
#   haproxy                 Debian's, the load balancer in front of several servers (scale-out tests, bench)
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

# --- system packages (Debian, as root): node/npm for the dashboard build, Chromium for browser tests ---
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=""
apt_install() {  # one `apt-get update` per run, and only when something is missing
  if [ -z "$apt_updated" ]; then apt-get update -qq && apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if can_apt; then
    apt_install nodejs npm
  else
    echo "setup.sh: node and npm are needed to build the dashboard (ml_dash/server/ui)." >&2
    echo "  Debian/Ubuntu: sudo apt-get install nodejs npm; elsewhere: https://nodejs.org (node >= 18)," >&2
    echo "  or your package manager / nvm. Then run scripts/setup.sh again." >&2
    exit 1
  fi
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if can_apt && apt_install chromium chromium-driver; then
    :
  else
    echo "setup.sh: WARNING: Debian's chromium and chromium-driver are not installed" \
      "(as root: apt-get install chromium chromium-driver);" \
      "the browser tests skip (and fail under CI=true)." >&2
  fi
fi

if ! command -v haproxy >/dev/null; then  # the load balancer of the scale-out tests and bench/load.py
  if can_apt && apt_install haproxy; then
    :
  else
    echo "setup.sh: WARNING: Debian's haproxy is not installed (as root: apt-get install haproxy);" \
      "the load-balancer tests skip (and fail under CI=true)." >&2
  fi
fi

# --- the dashboard: npm ci when the lockfile changed, a build when its inputs changed ---
ui=ml_dash/server/ui
if [ ! -f "$ui/node_modules/.package-lock.json" ] || [ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]; then
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f "$ui/dist/index.html" ] || [ -n "$(find "$ui/src" "$ui/build.mjs" "$ui/package-lock.json" \
    "$ui/node_modules/.package-lock.json" -newer "$ui/dist/index.html" -print -quit)" ]; then
  (cd "$ui" && npm run --silent build)
fi
