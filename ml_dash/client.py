"""``ml_dash.client.RemoteClient``: ml-dash 0.5.8's HTTP client class, on our API client.

``RemoteClient(base_url, api_key)`` has every public method of 0.5.8's, with its
signatures, requests (the same paths and bodies) and return values (the server's JSON,
or the part 0.5.8 returned: ``get_parameters`` → the ``data`` dict, ``list_files`` → the
``files`` list, ``list_metrics`` → the ``metrics`` list, ``download_file`` → the path).
Requests go through :class:`ml_dash.api.client.ApiClient`, so unlike 0.5.8 they are
retried with back-off on network errors, timeouts, 429 and 5xx, and file uploads and
downloads are streamed instead of held in memory.

Errors: a refused request raises :class:`RemoteHTTPError`, which is both an
``httpx.HTTPStatusError`` (what 0.5.8 raised; ``exc.response.status_code`` works) and an
:class:`ml_dash.ApiError` with the server's message and hint. A server that cannot be
reached raises :class:`ml_dash.api.client.ServerUnreachable` (an ``ApiError``) after the
retries, where 0.5.8 let httpx's ``ConnectError`` through at once. A downloaded file whose
sha256 does not match is deleted and raises :class:`ml_dash.InvalidInputError` (a
``ValueError``, as 0.5.8).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ml_dash.api.client import RETRY_STATUSES, ApiClient, _error_from, file_form, json_of
from ml_dash.errors import ApiError, InvalidInputError

__all__ = ["RemoteClient", "RemoteHTTPError"]

# Statuses handed back to us at once; the others (429, 5xx, ...) are retried by ApiClient first.
_NOT_RETRIED = tuple(s for s in range(400, 600) if s not in RETRY_STATUSES)


class RemoteHTTPError(ApiError, httpx.HTTPStatusError):
    """The server refused a request: an ``ApiError`` and an ``httpx.HTTPStatusError``."""

    def __init__(self, message: str, *, request: httpx.Request, response: httpx.Response,
                 hint: str | None = None) -> None:
        httpx.HTTPStatusError.__init__(self, message, request=request, response=response)
        self.message = message
        self.hint = hint
        self.status = response.status_code

    def __str__(self) -> str:
        return ApiError.__str__(self)


def _seg(name: Any) -> str:
    # 0.5.8 put names into the path as they are (an unnamed metric is the literal "None").
    return quote(str(name), safe="/")


class RemoteClient:
    """Client for an ml-dash server (``base_url`` without ``/api``; ``api_key`` as the bearer token)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._api = ApiClient(self.base_url, api_key)

    @property
    def _client(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (0.5.8's attribute; requests made on it are not retried)."""
        return self._api._http

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._api.request(method, path, ok=_NOT_RETRIED, **kwargs)
        except ApiError as exc:
            if exc.status is None:
                raise
            # Gave up after retrying a 429/5xx: the same error, in the shape 0.5.8 raised.
            request = httpx.Request(method, self.base_url + path)
            raise RemoteHTTPError(exc.message, request=request, response=httpx.Response(exc.status, request=request),
                                  hint=exc.hint) from None
        if response.status_code >= 400:
            error = _error_from(response)
            raise RemoteHTTPError(error.message, request=response.request, response=response, hint=error.hint)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return json_of(self._request(method, path, **kwargs), "is base_url pointing at an ml-dash server?")

    # --- experiments ---------------------------------------------------------------------------
    def create_or_update_experiment(self, project: str, name: str, description: str | None = None,
                                    tags: list[str] | None = None, bindrs: list[str] | None = None,
                                    folder: str | None = None, write_protected: bool = False,
                                    metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /projects/{project}/experiments``: ``{"experiment": {"id", ...}, "project", ...}``."""
        payload: dict[str, Any] = {"name": name}
        for key, value in (("description", description), ("tags", tags), ("bindrs", bindrs), ("folder", folder)):
            if value is not None:
                payload[key] = value
        if write_protected:
            payload["writeProtected"] = True
        if metadata is not None:
            payload["metadata"] = metadata
        return dict(self._json("POST", f"/projects/{_seg(project)}/experiments", json=payload))

    def update_experiment_status(self, experiment_id: str, status: str) -> dict[str, Any]:
        """``RUNNING`` | ``COMPLETED`` | ``FAILED`` | ``CANCELLED``."""
        return dict(self._json("PATCH", f"/experiments/{experiment_id}/status", json={"status": status}))

    # --- logs and parameters -------------------------------------------------------------------
    def create_log_entries(self, experiment_id: str, logs: list[dict[str, Any]]) -> dict[str, Any]:
        """Append ``[{"timestamp", "level", "message", "metadata"?}, ...]`` at the end."""
        return dict(self._json("POST", f"/experiments/{experiment_id}/logs", json={"logs": logs}))

    def query_logs(self, experiment_id: str, limit: int | None = None, offset: int | None = None,
                   order_by: str | None = None, order: str | None = None, level: list[str] | None = None,
                   start_time: str | None = None, end_time: str | None = None,
                   search: str | None = None) -> dict[str, Any]:
        params = {k: str(v) for k, v in (("limit", limit), ("offset", offset), ("orderBy", order_by),
                                          ("order", order), ("startTime", start_time), ("endTime", end_time),
                                          ("search", search)) if v is not None}
        if level is not None:
            params["level"] = ",".join(level)
        return dict(self._json("GET", f"/experiments/{experiment_id}/logs", params=params))

    def set_parameters(self, experiment_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Merge flattened parameters (``{"model.lr": 0.001}``)."""
        return dict(self._json("POST", f"/experiments/{experiment_id}/parameters", json={"data": data}))

    def get_parameters(self, experiment_id: str) -> dict[str, Any]:
        """The flattened parameters."""
        return dict(self._json("GET", f"/experiments/{experiment_id}/parameters").get("data", {}))

    # --- metrics -------------------------------------------------------------------------------
    @staticmethod
    def _metric_body(body: dict[str, Any], description: str | None, tags: list[str] | None,
                     metadata: dict[str, Any] | None) -> dict[str, Any]:
        for key, value in (("description", description), ("tags", tags), ("metadata", metadata)):
            if value:
                body[key] = value
        return body

    def append_to_metric(self, experiment_id: str, metric_name: str, data: dict[str, Any],
                         description: str | None = None, tags: list[str] | None = None,
                         metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self._metric_body({"data": data}, description, tags, metadata)
        return dict(self._json("POST", f"/experiments/{experiment_id}/metrics/{_seg(metric_name)}/append", json=body))

    def append_batch_to_metric(self, experiment_id: str, metric_name: str, data_points: list[dict[str, Any]],
                               description: str | None = None, tags: list[str] | None = None,
                               metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self._metric_body({"dataPoints": data_points}, description, tags, metadata)
        return dict(self._json("POST", f"/experiments/{experiment_id}/metrics/{_seg(metric_name)}/append-batch",
                               json=body))

    def read_metric_data(self, experiment_id: str, metric_name: str, start_index: int = 0,
                         limit: int = 1000) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/{_seg(metric_name)}/data",
                               params={"startIndex": start_index, "limit": limit}))

    def get_metric_data(self, experiment_id: str, metric_name: str, start_index: int | None = None,
                        limit: int | None = None, buffer_only: bool = False) -> dict[str, Any]:
        params = {k: str(v) for k, v in (("startIndex", start_index), ("limit", limit)) if v is not None}
        if buffer_only:
            params["bufferOnly"] = "true"
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/{_seg(metric_name)}/data",
                               params=params))

    def get_metric_stats(self, experiment_id: str, metric_name: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/{_seg(metric_name)}/stats"))

    def list_metrics(self, experiment_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/experiments/{experiment_id}/metrics")["metrics"])

    def download_metric_chunk(self, experiment_id: str, metric_name: str, chunk_number: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/metrics/{_seg(metric_name)}/chunks/"
                                      f"{chunk_number}"))

    # --- files ---------------------------------------------------------------------------------
    def upload_file(self, experiment_id: str, file_path: str, prefix: str, filename: str,
                    description: str | None, tags: list[str] | None, metadata: dict[str, Any] | None,
                    checksum: str, content_type: str, size_bytes: int) -> dict[str, Any]:
        """Multipart upload (the fields, then the file, streamed from disk); the file record."""
        data = file_form(prefix, checksum, size_bytes, description, tags, metadata)
        return dict(self._json("POST", f"/experiments/{experiment_id}/files", data=data,
                               files=lambda: {"file": (filename, open(file_path, "rb"), content_type)}))

    def list_files(self, experiment_id: str, prefix: str | None = None,
                   tags: list[str] | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("prefix", prefix), ("tags", ",".join(tags) if tags else None)) if v}
        return list(self._json("GET", f"/experiments/{experiment_id}/files", params=params).get("files", []))

    def get_file(self, experiment_id: str, file_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/experiments/{experiment_id}/files/{file_id}"))

    def download_file(self, experiment_id: str, file_id: str, dest_path: str | None = None) -> str:
        """Download to ``dest_path`` (default: the file's name), verified by sha256."""
        meta = self.get_file(experiment_id, file_id)
        return self._download(experiment_id, file_id, dest_path or meta["filename"], meta["checksum"])

    def download_file_streaming(self, experiment_id: str, file_id: str, dest_path: str) -> str:
        return self._download(experiment_id, file_id, dest_path, self.get_file(experiment_id, file_id)["checksum"])

    def _download(self, experiment_id: str, file_id: str, dest_path: str, checksum: str) -> str:
        digest = hashlib.sha256()
        try:
            with open(dest_path, "wb") as f:
                for chunk in self._api.download_file(experiment_id, file_id):
                    digest.update(chunk)
                    f.write(chunk)
        except ApiError:
            Path(dest_path).unlink(missing_ok=True)
            raise
        if digest.hexdigest() != checksum:
            os.remove(dest_path)
            raise InvalidInputError(f"Checksum verification failed for file {file_id}",
                                    hint="the download was damaged or the stored copy changed; try again")
        return dest_path

    def update_file(self, experiment_id: str, file_id: str, description: str | None = None,
                    tags: list[str] | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = {k: v for k, v in (("description", description), ("tags", tags), ("metadata", metadata))
                   if v is not None}
        return dict(self._json("PATCH", f"/experiments/{experiment_id}/files/{file_id}", json=payload))

    def delete_file(self, experiment_id: str, file_id: str) -> dict[str, Any]:
        """Soft delete: ``{"id", "deletedAt"}``."""
        return dict(self._json("DELETE", f"/experiments/{experiment_id}/files/{file_id}"))

    # --- GraphQL -------------------------------------------------------------------------------
    def graphql_query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        result = self._json("POST", "/graphql", json={"query": query, "variables": variables or {}})
        if "errors" in result:
            raise ApiError(f"GraphQL errors: {result['errors']}",
                           hint="check the query's fields and variables against the server's schema")
        return dict(result.get("data", {}))

    def list_projects_graphql(self, namespace_slug: str) -> list[dict[str, Any]]:
        """The namespace's projects, each with ``experimentCount``."""
        projects = self.graphql_query(_PROJECTS, {"namespaceSlug": namespace_slug}).get("projects", [])
        for project in projects:
            found = self.graphql_query(_EXPERIMENT_IDS, {"namespaceSlug": namespace_slug,
                                                         "projectSlug": project["slug"]})
            project["experimentCount"] = len(found.get("experiments", []))
        return list(projects)

    def list_experiments_graphql(self, namespace_slug: str, project_slug: str,
                                 status: str | None = None) -> list[dict[str, Any]]:
        variables = {"namespaceSlug": namespace_slug, "projectSlug": project_slug, "status": status}
        return list(self.graphql_query(_EXPERIMENTS, variables).get("experiments", []))

    def get_experiment_graphql(self, namespace_slug: str, project_slug: str,
                               experiment_name: str) -> dict[str, Any] | None:
        variables = {"namespaceSlug": namespace_slug, "projectSlug": project_slug, "experimentName": experiment_name}
        return self.graphql_query(_EXPERIMENT, variables).get("experiment")

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, exc_type: object, exc_val: object, exc_tb: object) -> bool:
        self.close()
        return False


# The GraphQL field sets 0.5.8 asks for (its list/download commands rely on them).
_DETAIL = """
    id name description tags status metadata
    project { slug }
    logMetadata { totalLogs }
    metrics { name metricMetadata { totalDataPoints } }
    files { id filename path contentType sizeBytes checksum description tags metadata }
    parameters { id data }
"""
_PROJECTS = ("query Projects($namespaceSlug: String!) { projects(namespaceSlug: $namespaceSlug) "
             "{ id name slug description tags } }")
_EXPERIMENT_IDS = ("query ExperimentsCount($namespaceSlug: String!, $projectSlug: String!) { "
                   "experiments(namespaceSlug: $namespaceSlug, projectSlug: $projectSlug) { id } }")
_EXPERIMENTS = ("query Experiments($namespaceSlug: String!, $projectSlug: String!, $status: ExperimentStatus) { "
                "experiments(namespaceSlug: $namespaceSlug, projectSlug: $projectSlug, status: $status) { "
                "startedAt endedAt" + _DETAIL + "} }")
_EXPERIMENT = ("query Experiment($namespaceSlug: String!, $projectSlug: String!, $experimentName: String!) { "
               "experiment(namespaceSlug: $namespaceSlug, projectSlug: $projectSlug, "
               "experimentName: $experimentName) {" + _DETAIL + "} }")
