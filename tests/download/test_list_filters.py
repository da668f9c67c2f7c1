"""`ml-dash list --tags/--status` filter with --project, and across every project without it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from ml_dash import Experiment
from tests.helpers.cli import run_cli
from tests.helpers.server import LiveServer, live_server

CREATED = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z?")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    base = tmp_path_factory.mktemp("list")
    with live_server(base / "server") as live, pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k.startswith(("ML_DASH_", "DREAMLAKE_"))]:
            env.delenv(name)  # as tests/conftest.py's isolated_env, which is per test
        env.setenv("ML_DASH_CONFIG_DIR", str(base / "config-home"))
        key = live.token("k", "alice")
        for project, name, tags, fail in [("vision", "a", ["baseline"], False), ("vision", "b", ["sweep"], False),
                                          ("nlp", "c", ["baseline", "bert"], True), ("nlp", "d", None, False)]:
            exp = Experiment(name=name, project=project, remote=live.url, api_key=key, tags=tags).run.start()
            exp.metrics("loss").append(value=1.0, step=0)
            exp.log("hello")
            exp.run.fail() if fail else exp.run.complete()
        yield live, key


def ml_dash_list(server: tuple[LiveServer, str], *args: str) -> str:
    live, key = server
    r = run_cli("list", "--remote", live.url, "--api-key", key, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return CREATED.sub("<created>", r.stdout)


def test_without_a_filter_the_projects_are_listed(server: tuple[LiveServer, str]) -> None:
    assert ml_dash_list(server) == (
        "  project  experiments\n"
        "  vision   2\n"
        "  nlp      2\n"
        "\nTotal: 2 project(s)\n")


def test_tags_filter_every_project_without_project(server: tuple[LiveServer, str]) -> None:
    assert ml_dash_list(server, "--tags", "baseline") == (
        "  project  experiment  status     metrics  points  logs  files  tags           created\n"
        "  vision   a           COMPLETED  1        1       1     0      baseline       <created>\n"
        "  nlp      c           FAILED     1        1       1     0      baseline,bert  <created>\n"
        "\nTotal: 2 experiment(s)\n")


def test_tags_filter_one_project(server: tuple[LiveServer, str]) -> None:
    assert ml_dash_list(server, "--tags", "baseline,sweep", "--project", "vision") == (
        "  experiment  status     metrics  points  logs  files  tags      created\n"
        "  a           COMPLETED  1        1       1     0      baseline  <created>\n"
        "  b           COMPLETED  1        1       1     0      sweep     <created>\n"
        "\nTotal: 2 experiment(s)\n")
    assert ml_dash_list(server, "--tags", "bert", "--project", "vision") == (
        "  experiment  status  metrics  points  logs  files  tags  created\n"
        "\nTotal: 0 experiment(s)\n")


def test_status_filters_every_project_and_combines_with_tags(server: tuple[LiveServer, str]) -> None:
    assert ml_dash_list(server, "--status", "FAILED") == (
        "  project  experiment  status  metrics  points  logs  files  tags           created\n"
        "  nlp      c           FAILED  1        1       1     0      baseline,bert  <created>\n"
        "\nTotal: 1 experiment(s)\n")
    assert ml_dash_list(server, "--status", "COMPLETED", "--tags", "baseline, sweep") == (
        "  project  experiment  status     metrics  points  logs  files  tags      created\n"
        "  vision   a           COMPLETED  1        1       1     0      baseline  <created>\n"
        "  vision   b           COMPLETED  1        1       1     0      sweep     <created>\n"
        "\nTotal: 2 experiment(s)\n")


def test_tags_filter_every_project_as_json(server: tuple[LiveServer, str]) -> None:
    import json

    live, key = server
    r = run_cli("list", "--remote", live.url, "--api-key", key, "--tags", "baseline", "--json")
    assert r.returncode == 0, r.stderr
    assert [(x["project"], x["experiment"], x["tags"]) for x in json.loads(r.stdout)] == [
        ("vision", "a", ["baseline"]), ("nlp", "c", ["baseline", "bert"])]
