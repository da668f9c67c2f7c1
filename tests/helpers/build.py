"""Build small experiment trees with our SDK (which writes the 0.5.8 format)."""

from __future__ import annotations

from pathlib import Path

from ml_dash import Experiment


def build_experiment(root: Path, project: str, name: str, *, folder: str | None = None, logs: int = 3,
                     points: int = 5, files: int = 1, params: bool = True) -> Path:
    with Experiment(name=name, project=project, local_path=root, folder=folder, tags=["t"]).run as exp:
        if params:
            exp.params.set(lr=0.1, model={"depth": 18})
        for i in range(logs):
            exp.log(f"line {i}", step=i)
        if points:
            exp.metrics("loss").append_batch([{"value": 1.0 / (i + 1), "step": i} for i in range(points)])
        for i in range(files):
            exp.files("artifacts").save(f"content {i}\n".encode(), f"file{i}.txt")
    assert exp.dir is not None
    return exp.dir


def build_tree(root: Path) -> Path:
    """Three experiments in two projects, one inside a folder."""
    build_experiment(root, "deep-learning", "exp1")
    build_experiment(root, "deep-learning", "exp2", folder="/sweeps")
    build_experiment(root, "other", "exp3")
    return root
