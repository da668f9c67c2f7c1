""".dashrc files ride along with `ml-dash upload` and come back with `ml-dash download`: an experiment's and
folders' (both places a folder's can be in the 0.5.8 layout), a bad one reported with its line, a re-run
sending nothing new."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REAL_CLIENT_TREE
from tests.helpers.cli import run_cli
from tests.upload.conftest import Target, target  # noqa: F401 - fixture

EXP = "charts:\n  - ctype: line\n    yKey: train_loss.value\n"
SWEEP = "# the 2025 sweep\ncharts:\n  - ctype: line\n    yKey: train_loss.value\n    groupBy: params.seed\n"
ABOVE = "compare:\n  differencesOnly: true\n"
ROOT = "metrics:\n  fields: ['*']\n"
TYPO = "charts:\n  - ctype: line\n    yKye: loss\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, dest)
    (dest / "vision/resnet-baseline/.dashrc").write_text(EXP)  # an experiment's
    (dest / "sweeps/2025/vision/.dashrc").write_text(SWEEP)  # project directory: vision, folder sweeps/2025
    (dest / "sweeps/.dashrc").write_text(ABOVE)  # above the project directories: vision, folder sweeps
    (dest / "vision/.dashrc").write_text(ROOT)  # project directory at the root: vision, folder ""
    return dest


def _cli(target: Target, *args: str, cwd: Path):  # noqa: F811
    return run_cli(*args, "--remote", target.url, "--api-key", target.key, cwd=cwd)


def _server(target: Target) -> dict[str, str]:  # noqa: F811
    out = {f"vision:{i['folder']}": i["text"] for i in target.http.get("/ui/dashrc/folders?project=vision").json()[
        "items"]}
    for key, e in target.experiments().items():
        r = target.http.get(f"/ui/experiments/{e['id']}/dashrc")
        if r.status_code == 200:
            out[key] = r.json()["text"]
    return out


def _targets(root: Path) -> dict[tuple[str, str], str | None]:
    from ml_dash.upload.dashrc import folder_dashrcs
    from ml_dash.upload.discover import discover

    found = discover(root)
    chosen, notes = folder_dashrcs(root, found.dashrc_dirs, found.experiments)
    assert notes == []
    return {(f.project, f.folder): f.check.text for f in chosen}


def test_upload_then_download_round_trip_and_a_re_run_sends_nothing(tree: Path, target: Target,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    dry = run_cli("upload", str(tree), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (f"  vision/resnet-baseline: {tree}/vision/resnet-baseline/.dashrc\n"
            f"  folder / of project vision: {tree}/vision/.dashrc\n"
            f"  folder sweeps of project vision: {tree}/sweeps/.dashrc\n"
            f"  folder sweeps/2025 of project vision: {tree}/sweeps/2025/vision/.dashrc\n") in dry.stdout

    up = _cli(target, "upload", str(tree), "-v", cwd=tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "  ✓ Uploaded (10 params, 7 logs, 2 metrics, 3 files, .dashrc)" in up.stdout
    assert f"[.dashrc] folder sweeps/2025 of project vision ({tree}/sweeps/2025/vision/.dashrc)\n  ✓ uploaded" in \
        up.stdout
    assert _server(target) == {"vision:": ROOT, "vision:sweeps": ABOVE, "vision:sweeps/2025": SWEEP,
                               "vision/resnet-baseline": EXP}

    down = tmp_path / "down"
    r = _cli(target, "download", str(down), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vision/resnet-baseline\n  ✓ Downloaded (10 params, 7 logs, 100 points, 3 files, .dashrc)" in r.stdout
    found = {p.relative_to(down).as_posix(): p.read_text() for p in down.rglob(".dashrc")}
    # A folder's comes back into the project directory of that folder (the 0.5.8 layout's place for it).
    assert found == {"vision/resnet-baseline/.dashrc": EXP, "sweeps/2025/vision/.dashrc": SWEEP,
                     "sweeps/vision/.dashrc": ABOVE, "vision/.dashrc": ROOT}

    again = _cli(target, "upload", str(tree), "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert {f["status"] for f in report["folder_dashrcs"]} == {"already"}, report["folder_dashrcs"]
    assert [e["dashrc"] for e in report["experiments"] if e["dashrc"]] == ["already"]
    assert report["requests"] == 6 + 1 + 3  # create + streams per experiment; one read per .dashrc, no write
    assert _server(target) == {"vision:": ROOT, "vision:sweeps": ABOVE, "vision:sweeps/2025": SWEEP,
                               "vision/resnet-baseline": EXP}
    # The downloaded tree names the same server .dashrc files as the original (a re-upload of it would match).
    assert _targets(down) == _targets(tree) == {("vision", ""): ROOT, ("vision", "sweeps"): ABOVE,
                                                ("vision", "sweeps/2025"): SWEEP}

    from ml_dash.download.run import write_dashrc

    (down / "vision/.dashrc").write_text("# edited locally\n")  # a local edit survives a download
    assert not write_dashrc(down / "vision/.dashrc", ROOT, overwrite=False)
    assert (down / "vision/.dashrc").read_text() == "# edited locally\n"
    assert write_dashrc(down / "vision/.dashrc", ROOT, overwrite=True) and (down / "vision/.dashrc").read_text() == ROOT


def test_a_bad_dashrc_is_reported_with_its_line_and_the_rest_goes_up(tree: Path, target: Target,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    (tree / "nlp/bert-finetune/.dashrc").write_text(TYPO)
    (tree / "sweeps/2025/vision/.dashrc").write_text("charts:\n  - ctype: lin\n    yKey: a\n")

    strict = _cli(target, "upload", str(tree), "--strict", cwd=tmp_path)
    assert strict.returncode == 1 and "Validation failed in --strict mode" in strict.stderr
    assert target.experiments() == {}  # refused before anything was sent

    r = _cli(target, "upload", str(tree), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"      .dashrc is invalid: {tree}/nlp/bert-finetune/.dashrc:3: charts.0.yKye: unknown key (hint: did "
            "you mean 'yKey'?") in r.stdout
    assert (f"      .dashrc is invalid: {tree}/sweeps/2025/vision/.dashrc:2: charts.0.ctype: 'lin' is not one of line, "
            "image, video (hint: did you mean 'line'?") in r.stdout
    assert "Failed .dashrc files:\n  ✗ folder sweeps/2025 of project vision: " in r.stdout
    assert sorted(target.experiments()) == ["nlp/bert-finetune", "vision/resnet-baseline", "vision/resnet-lr-sweep"]
    assert _server(target) == {"vision:": ROOT, "vision:sweeps": ABOVE, "vision/resnet-baseline": EXP}

    (tree / "nlp/bert-finetune/.dashrc").write_text(TYPO.replace("yKye", "yKey"))
    (tree / "sweeps/2025/vision/.dashrc").write_text(SWEEP)
    fixed = _cli(target, "upload", str(tree), "--resume", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _server(target)["nlp/bert-finetune"] == TYPO.replace("yKye", "yKey")
    assert _server(target)["vision:sweeps/2025"] == SWEEP


def test_a_dashrc_with_no_experiment_below_is_said(tmp_path: Path) -> None:
    from ml_dash.upload.dashrc import folder_dashrcs
    from ml_dash.upload.discover import discover

    tree = tmp_path / "tree"
    shutil.copytree(REAL_CLIENT_TREE, tree)
    (tree / "empty").mkdir()
    (tree / "empty/.dashrc").write_text(ROOT)
    (tree / ".dashrc").write_text(ABOVE)  # the root: every project's root folder, unless one is closer
    (tree / "vision/.dashrc").write_text(ROOT)
    found = discover(tree)
    chosen, notes = folder_dashrcs(tree, found.dashrc_dirs, found.experiments)
    assert sorted((f.project, f.folder, f.check.path.parent.name) for f in chosen) == [
        ("nlp", "", "tree"), ("vision", "", "vision")]
    assert any("empty/.dashrc: no experiment below it" in n for n in notes)
    assert any(n.startswith(f"{tree}/.dashrc: {tree}/vision/.dashrc is closer") for n in notes)


def test_the_prefix_layout_maps_folders_below_the_project(tmp_path: Path) -> None:
    from ml_dash.upload.dashrc import folder_dashrcs
    from ml_dash.upload.discover import discover
    from tests.conftest import FIXTURES

    tree = tmp_path / "dash"
    shutil.copytree(FIXTURES / "real-client-0.6.27", tree)
    sweep = next(p.parent for p in tree.rglob("experiment.json") if "resnet-lr-sweep" in str(p))
    (sweep.parent / ".dashrc").write_text(ROOT)  # .../OWNER/vision/sweeps/2025
    (sweep.parents[2] / ".dashrc").write_text(ABOVE)  # .../OWNER/vision
    found = discover(tree)
    chosen, notes = folder_dashrcs(tree, found.dashrc_dirs, found.experiments)
    assert sorted((f.project, f.folder, f.check.text) for f in chosen) == [("vision", "", ABOVE),
                                                                           ("vision", "sweeps/2025", ROOT)]
    assert notes == []
