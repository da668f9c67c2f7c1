"""02 — log straight to an ml-dash server (remote mode).

    ML_DASH_REMOTE=http://127.0.0.1:8000 ML_DASH_API_KEY=... python examples/02_log_to_server.py

Records are queued and sent in batches by a background thread; the training loop
never waits for the network. Leaving `with exp.run:` flushes and sets the status.
"""

from __future__ import annotations

import math
import os

from ml_dash import Experiment


def main() -> int:
    exp = Experiment(name="remote-run", project="image-classification", remote=os.environ["ML_DASH_REMOTE"],
                     api_key=os.environ["ML_DASH_API_KEY"], tags=["example", "remote"])
    with exp.run:
        exp.params.set(model={"name": "resnet18"}, optim={"lr": 0.1})
        loss = exp.metrics("loss")
        for step in range(1000):
            loss.append(value=round(2.0 * math.exp(-step / 200), 6), step=step)
        exp.log("done", level="info", steps=1000)
        print(f"experiment {exp.id}: {loss.stats()['totalDataPoints']} points on the server")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
