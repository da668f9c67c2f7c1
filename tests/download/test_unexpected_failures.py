"""An unexpected exception (not an MLDashError) while downloading one experiment is that
experiment's failure: reported with its type and message, exit code 1, the others downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml_dash.api.client import ApiClient
from ml_dash.cli import main
from ml_dash.sdk.backends.local import LocalBackend
from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.helpers.trees import records_of
from tests.upload.conftest import Target, target  # noqa: F401 - fixture


def test_one_experiments_odd_failure_does_not_stop_the_others(
        target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    up = run_cli("upload", str(REAL_CLIENT_TREE), "--remote", target.url, "--api-key", target.key, cwd=tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    ids = {key: str(e["id"]) for key, e in target.experiments().items()}

    list_metrics, save_file = ApiClient.list_metrics, LocalBackend.save_file

    def odd_answer(self: ApiClient, experiment_id: str) -> list[dict[str, Any]]:
        if experiment_id == ids["nlp/bert-finetune"]:
            raise KeyError("metrics")  # e.g. an answer without the field the client reads
        return list_metrics(self, experiment_id)

    def disk_full(self: LocalBackend, source: Path, prefix: str, *args: Any) -> dict[str, Any]:
        assert self.paths is not None
        if self.paths.dir.name == "resnet-lr-sweep":
            raise OSError(28, "No space left on device")
        return save_file(self, source, prefix, *args)

    monkeypatch.chdir(tmp_path)  # the resume state of the failed run is written to the working directory
    monkeypatch.setattr(ApiClient, "list_metrics", odd_answer)
    monkeypatch.setattr(LocalBackend, "save_file", disk_full)
    dest = tmp_path / "down"
    code = main(["download", str(dest), "--remote", target.url, "--api-key", target.key])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "nlp/bert-finetune\n  ✗ Failed\n      KeyError: 'metrics'\n" in out
    assert "sweeps/2025/vision/resnet-lr-sweep\n  ✗ Failed\n      OSError: [Errno 28] No space left on device\n" in out
    assert "vision/resnet-baseline\n  ✓ Downloaded (" in out
    assert "\nDownloaded 1/3 experiment(s)" in out
    assert (tmp_path / ".ml-dash-download-state.json").is_file()  # --resume retries only the two failed
    assert records_of(dest)["vision/resnet-baseline"] == records_of(REAL_CLIENT_TREE)["vision/resnet-baseline"]
