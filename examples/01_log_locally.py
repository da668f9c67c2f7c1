"""01 — log an experiment to a local tree (no server, no network).

    python examples/01_log_locally.py [ROOT]      # default ROOT: ./.ml-dash

Writes ROOT/[folder/]project/experiment/ exactly as ml-dash 0.5.8 would, so
`ml-dash upload ROOT` (or the real 0.5.8 client) can send it to a server later.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from ml_dash import Experiment


def train(root: str, name: str, lr: float, folder: str | None = None) -> Path:
    exp = Experiment(name=name, project="image-classification", local_path=root, folder=folder,
                     description=f"toy run with lr={lr}", tags=["example"], metadata={"host": "laptop"})
    with exp.run:
        exp.params.set(model={"name": "resnet18", "depth": 18}, optim={"name": "sgd", "lr": lr}, epochs=5)
        exp.log("training started", level="info")
        loss = exp.metrics("loss", description="training loss", tags=["train"])
        for step in range(200):
            loss.append(value=round(2.0 * math.exp(-lr * step / 5), 6), step=step, epoch=step // 40)
        exp.metrics("accuracy").append_batch([{"value": min(0.99, 0.5 + 0.1 * e), "epoch": e} for e in range(5)])
        with tempfile.TemporaryDirectory() as tmp:
            summary = Path(tmp) / "summary.txt"
            summary.write_text(f"final loss {loss.read(199, 1)['data'][0]['data']['value']}\n")
            exp.files(file_path=str(summary), prefix="/reports", description="run summary").save()
        exp.files("checkpoints").save(bytes(range(256)), "weights.bin")
        exp.log("training finished", level="info", final_epoch=4)
    assert exp.dir is not None
    return exp.dir


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else ".ml-dash"
    for name, lr, folder in (("baseline", 0.1, None), ("lr-0.3", 0.3, "/sweeps/lr"), ("lr-0.5", 0.5, "/sweeps/lr")):
        print(f"logged {train(root, name, lr, folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
