"""``ml-dash list``: projects, or the experiments of a project with status and counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ml_dash.cli.configured import parse, print_help, resolve_parsed
from ml_dash.cli.console import print_table

DESCRIPTION = ("List the projects on a server, or the experiments of one project (status, counts, tags); "
               "with --status or --tags but no --project, the matching experiments of every project.")
USAGE = "[--remote URL] [--api-key KEY | --username NAME] [--project P] [--status S] [--tags a,b] [--json]"

EXPERIMENTS_QUERY = (
    "query Experiments($namespaceSlug: String, $projectSlug: String, $status: ExperimentStatus) { "
    "experiments(namespaceSlug: $namespaceSlug, projectSlug: $projectSlug, status: $status) { id name status tags "
    "folder createdAt logMetadata { totalLogs } metrics { name metricMetadata { totalDataPoints } } files { id } } }")


def main(argv: Sequence[str]) -> int:
    parsed = parse("list", "ml-dash list", argv)
    if parsed.help:
        return print_help("list", "ml-dash list", DESCRIPTION, USAGE)
    cfg = resolve_parsed("list", parsed).config
    from ml_dash.api.connect import client_for
    from ml_dash.download.run import PROJECTS_QUERY

    wanted = {t.strip() for t in cfg.tags.split(",") if t.strip()} if cfg.tags else set()
    with client_for(cfg) as client:
        projects = [cfg.project] if cfg.project is not None else [
            p["slug"] for p in client.graphql(PROJECTS_QUERY, {"namespaceSlug": cfg.namespace})["projects"]]
        found = {slug: client.graphql(EXPERIMENTS_QUERY, {"namespaceSlug": cfg.namespace, "projectSlug": slug,
                                                          "status": cfg.status})["experiments"]
                 for slug in projects}
    if wanted:  # any of the tags, as 0.5.8 filters within a project
        found = {slug: [e for e in exps if wanted & set(e.get("tags") or [])] for slug, exps in found.items()}
    if cfg.project is None and cfg.status is None and not wanted:
        counts = [{"project": slug, "experiments": len(exps)} for slug, exps in found.items()]
        if cfg.json_output:
            print(json.dumps(counts, indent=2))
        else:
            print_table(("project", "experiments"), [(r["project"], str(r["experiments"])) for r in counts])
            print(f"\nTotal: {len(counts)} project(s)")
        return 0
    rows = [_row(slug, e) for slug, exps in found.items() for e in exps]
    if cfg.json_output:
        print(json.dumps(rows, indent=2))
        return 0
    every = cfg.project is None  # the matching experiments of every project: say which project
    print_table((("project",) if every else ()) + ("experiment", "status", "metrics", "points", "logs", "files",
                                                     "tags", "created"),
                [((r["project"],) if every else ()) + (r["experiment"], r["status"], str(r["metrics"]),
                 str(r["points"]), str(r["logs"]), str(r["files"]), ",".join(r["tags"]) or "-", r["createdAt"] or "")
                 for r in rows])
    print(f"\nTotal: {len(rows)} experiment(s)")
    return 0


def _row(project: str, e: dict[str, Any]) -> dict[str, Any]:
    name = "/".join(p for p in ((e.get("folder") or "").strip("/"), e["name"]) if p)
    return {"project": project, "experiment": name, "id": e["id"], "status": e["status"], "metrics": len(e["metrics"]),
            "points": sum(m["metricMetadata"]["totalDataPoints"] for m in e["metrics"]),
            "logs": e["logMetadata"]["totalLogs"], "files": len(e["files"]), "tags": e.get("tags") or [],
            "createdAt": e.get("createdAt")}
