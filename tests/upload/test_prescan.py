"""A strict or dry run checks its streams on every core first (validate.prescan): exactly what checking them
one after the other in this process finds, for clean and damaged streams alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml_dash.upload import validate
from ml_dash.upload.discover import discover_experiments
from ml_dash.upload.validate import ExperimentValidator, prescan
from tests.conftest import REAL_CLIENT_TREE
from tests.upload.test_damaged_trees import damage_lines


@pytest.fixture(autouse=True)
def _as_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command checks before it starts any thread; this test process may hold some already (the
    # session's S3 and PostgreSQL servers), which prescan would rightly not fork beside.
    import threading

    monkeypatch.setattr(threading, "active_count", lambda: 1)


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, tree)
    damage_lines(tree)
    return tree


def _jobs(tree: Path) -> list[tuple[Path, str, str]]:
    jobs = [(p, "logs", "logs") for p in sorted(tree.rglob("logs/logs.jsonl"))]
    return jobs + [(p, "metric", p.parent.name) for p in sorted(tree.rglob("metrics/*/data.jsonl"))]


def test_prescan_finds_what_a_scan_in_this_process_finds(damaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "PARALLEL_BYTES", 0)
    jobs = _jobs(damaged)
    assert len(jobs) >= 4
    got = prescan(list(jobs), workers=2)
    assert got == {path: validate._scan_job(path, kind, name) for path, kind, name in jobs}
    assert sum(c.invalid for c in got.values()) == 6  # the damage is found, with its lines
    assert {p.line for c in got.values() for p in c.sample} >= {3, 5, 6, 10, 20, 51}


@pytest.mark.parametrize("strict", [True, False])
def test_a_validator_that_prescanned_says_the_same(damaged: Path, strict: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    experiments = discover_experiments(damaged)
    alone = [ExperimentValidator(strict=strict).validate_experiment(e) for e in experiments]
    monkeypatch.setattr(validate, "PARALLEL_BYTES", 0)
    validator = ExperimentValidator(strict=strict)
    validator.prescan(experiments)
    assert len(validator._scanned) == len(_jobs(damaged))  # done by the pool
    assert [validator.validate_experiment(e) for e in experiments] == alone
    assert validator._scanned == {}


def test_small_trees_one_core_and_threads_are_checked_here(damaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    assert prescan(_jobs(damaged), workers=2) == {}  # below PARALLEL_BYTES: a pool would cost more
    monkeypatch.setattr(validate, "PARALLEL_BYTES", 0)
    assert prescan(_jobs(damaged), workers=1) == {}
    monkeypatch.setattr(threading, "active_count", lambda: 3)
    assert prescan(_jobs(damaged), workers=2) == {}  # fork beside running threads would copy their locks
