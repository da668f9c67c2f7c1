"""Every numbered example runs against a live server, as documented in its docstring."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_dash.records import ExperimentRecord, load_record
from tests.helpers.server import LiveServer, live_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    with live_server(tmp_path_factory.mktemp("examples-server")) as s:
        yield s, s.token("examples", "alice")


def run(cmd: list[str], cwd: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "DREAMLAKE_"))}
    full.update(PATH=f"{BIN}:{full.get('PATH', '')}", ML_DASH_CONFIG_DIR=str(cwd / "home"), **env)
    out = subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_01_log_locally(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    run([sys.executable, "-W", "error", str(EXAMPLES / "01_log_locally.py"), str(root)], tmp_path)
    found = sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("experiment.json"))
    assert found == ["image-classification/baseline", "sweeps/lr/image-classification/lr-0.3",
                     "sweeps/lr/image-classification/lr-0.5"]
    for path in root.rglob("experiment.json"):
        assert load_record(path, ExperimentRecord).tags == ["example"]


def test_02_to_06_against_a_server(server: tuple[LiveServer, str], tmp_path: Path) -> None:
    live, key = server
    env = {"ML_DASH_REMOTE": live.url, "ML_DASH_API_KEY": key}
    assert "1000 points on the server" in run([sys.executable, str(EXAMPLES / "02_log_to_server.py")], tmp_path, **env)
    out = run([sys.executable, str(EXAMPLES / "03_hybrid.py"), str(tmp_path / "hybrid")], tmp_path, **env)
    assert "local copy in" in out and (tmp_path / "hybrid/image-classification/hybrid-run/metrics/acc").is_dir()
    assert run([sys.executable, str(EXAMPLES / "04_env_selected_mode.py")], tmp_path,
               ML_DASH_LOCAL_PATH=str(tmp_path / "runs")).strip() == "local"
    assert (tmp_path / "runs/env-demo/env-run/metrics/loss/data.jsonl").exists()
    assert run([sys.executable, str(EXAMPLES / "04_env_selected_mode.py")], tmp_path, **env).strip() == "remote"
    assert run([sys.executable, str(EXAMPLES / "04_env_selected_mode.py")], tmp_path,
               DREAMLAKE_API_URL=live.url, DREAMLAKE_API_KEY=key,
               DREAMLAKE_LOCAL_PATH=str(tmp_path / "dl")).strip() == "hybrid"
    run([sys.executable, str(EXAMPLES / "01_log_locally.py"), str(tmp_path / "tree")], tmp_path)
    out = run([sys.executable, str(EXAMPLES / "05_upload.py"), str(tmp_path / "tree")], tmp_path, **env)
    assert "image-classification/baseline: valid" in out and "Upload complete" in out
    out = run(["bash", str(EXAMPLES / "06_download.sh"), str(tmp_path / "down")], tmp_path, **env)
    assert out.count("Downloaded 6/6 experiment(s)") == 2 and "(0 params, 0 logs, 0 points, 0 files)" in out
    assert (tmp_path / "down/image-classification/remote-run/metrics/loss/data.jsonl").exists()
    assert (tmp_path / "down/env-demo/env-run/metrics/loss/data.jsonl").exists()
