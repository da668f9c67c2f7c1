"""03 — hybrid mode: write the local tree first, send to the server in the background.

    ML_DASH_REMOTE=http://127.0.0.1:8000 ML_DASH_API_KEY=... python examples/03_hybrid.py [ROOT]

If the server is unreachable, training goes on and nothing is lost: whatever did not
reach the server is sent later by `ml-dash upload ROOT`, exactly once.
"""

from __future__ import annotations

import os
import sys

from ml_dash import Experiment


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else ".ml-dash"
    exp = Experiment(name="hybrid-run", project="image-classification", local_path=root,
                     remote=os.environ["ML_DASH_REMOTE"], api_key=os.environ["ML_DASH_API_KEY"])
    with exp.run:
        exp.params.set(batch_size=64)
        exp.metrics("acc").append_batch([{"value": 0.5 + i / 100, "epoch": i} for i in range(40)])
        exp.log("hybrid run finished")
    print(f"local copy in {exp.dir}; server id {exp.id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
