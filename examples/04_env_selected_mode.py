"""04 — the same script logs locally or remotely depending only on the environment.

    ML_DASH_LOCAL_PATH=./runs python examples/04_env_selected_mode.py                  # local
    ML_DASH_REMOTE=http://127.0.0.1:8000 ML_DASH_API_KEY=... python examples/04_...   # remote
    ... both variables                                                                  # hybrid

(The DREAMLAKE_LOCAL_PATH / DREAMLAKE_API_URL / DREAMLAKE_API_KEY names work too.)
"""

from __future__ import annotations

from ml_dash import Experiment


def main() -> int:
    with Experiment(name="env-run", project="env-demo").run as exp:  # no mode arguments at all
        for step in range(100):
            exp.metrics("loss").append(value=1.0 / (step + 1), step=step)
        exp.log(f"logged in {exp.mode} mode")
    print(exp.mode)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
