"""The typed schema of every command's configuration: the single source of key names,
types, defaults, help text, classic flags and environment variable names.

A field's ``json_schema_extra`` may carry ``flags`` (the classic ``--flags`` that set
it, first one canonical) and ``secret`` (never echoed). Env var names are derived:
``ML_DASH_`` + dotted key upper-cased with ``.`` → ``__`` (``skip.logs`` →
``ML_DASH_SKIP__LOGS``), plus the aliases in ``ENV_ALIASES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

__all__ = ["DownloadConfig", "ImportConfig", "ListConfig", "ReportConfig", "RetryConfig", "ServeConfig", "ServerAuthConfig", "ServerLimitsConfig", "ShowConfig",
           "SkipConfig", "UploadConfig"]

_STRICT = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, coerce_numbers_to_str=True)


def flags(*names: str, secret: bool = False) -> dict[str, object]:
    extra: dict[str, object] = {"flags": list(names)}
    if secret:
        extra["secret"] = True
    return extra


class SkipConfig(BaseModel):
    """What not to upload."""

    model_config = _STRICT
    logs: bool = Field(False, description="Don't upload logs.", json_schema_extra=flags("--skip-logs"))
    metrics: bool = Field(False, description="Don't upload metrics.", json_schema_extra=flags("--skip-metrics"))
    files: bool = Field(False, description="Don't upload files.", json_schema_extra=flags("--skip-files"))
    params: bool = Field(False, description="Don't upload parameters.", json_schema_extra=flags("--skip-params"))


class RetryConfig(BaseModel):
    """How hard to try before a stream is reported as failed."""

    model_config = _STRICT
    attempts: int = Field(6, ge=1, le=100, description="Attempts per request (network errors, timeouts, 429, 5xx).",
                          json_schema_extra=flags("--retries"))
    backoff: float = Field(0.5, gt=0, le=60, description="First back-off in seconds; doubles per attempt, with jitter.")
    max_backoff: float = Field(30.0, gt=0, le=600, description="Longest single back-off in seconds.")
    timeout: float = Field(30.0, gt=0, le=3600, description="Seconds before one request times out.",
                           json_schema_extra=flags("--timeout"))


class ReportConfig(BaseModel):
    """The machine-readable report of a run."""

    model_config = _STRICT
    format: Literal["none", "json"] = Field("none", description="Write a report of the run: none or json.")
    path: Path | None = Field(None, description="Where to write the report (default: ml-dash-report.json).",
                              json_schema_extra=flags("--report"))


AUTO_LOG_BATCH = 1000
AUTO_METRIC_BATCH = 10_000


class _Client(BaseModel):
    """Keys every command that talks to a server has."""

    model_config = _STRICT
    remote: str | None = Field(None, description="Remote server URL.", json_schema_extra=flags("--remote"))
    api_key: SecretStr | None = Field(None, description="API key (bearer token) for the server.",
                                      json_schema_extra=flags("--api-key", secret=True))
    username: str | None = Field(None, description="Username for automatic authentication (an api_key wins).",
                                 json_schema_extra=flags("--username", "--user-name"))
    verbose: bool = Field(False, description="Show detailed progress.", json_schema_extra=flags("-v", "--verbose"))
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("remote")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")) or len(v) < 8:
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")


class _Transfer(_Client):
    """Keys of the commands that move experiments between a local tree and a server."""

    path: Path = Field(Path(".ml-dash"), description="Local storage directory.", json_schema_extra=flags("PATH"))
    project: str | None = Field(None, description="Only experiments of this project.",
                                json_schema_extra=flags("--project"))
    experiment: str | None = Field(None, description="Only this experiment (requires project).",
                                   json_schema_extra=flags("--experiment"))
    skip: SkipConfig = Field(default_factory=SkipConfig)
    dry_run: bool = Field(False, description="Check and size the job; move nothing.",
                          json_schema_extra=flags("--dry-run"))
    resume: bool = Field(False, description="Skip experiments a previous run completed (state file).",
                         json_schema_extra=flags("--resume"))
    workers: int = Field(4, ge=1, le=64, description="Requests in flight at once (experiments and streams).",
                         json_schema_extra=flags("--workers"))

    @field_validator("path", "state_file", check_fields=False)
    @classmethod
    def _expand_user(cls, v: Path) -> Path:
        # A quoted '~/x' reaches us literally; bash only expands an unquoted one.
        return v.expanduser()

    @field_validator("experiment")
    @classmethod
    def _needs_project(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not info.data.get("project"):
            raise ValueError("experiment requires project (set project too)")
        return v


class UploadConfig(_Transfer):
    """Configuration of ``ml-dash upload``."""

    strict: bool = Field(False, description="Fail on any validation problem before anything is sent.",
                         json_schema_extra=flags("--strict"))
    batch_size: Annotated[int, Field(gt=0, le=100_000)] | Literal["auto"] = Field(
        "auto", description="Log lines / metric points per request; auto: 1000 log lines and 10000 metric points "
                            "(0.5.8 sent 100 of each).", json_schema_extra=flags("--batch-size"))
    state_file: Path = Field(Path(".ml-dash-upload-state.json"), description="Path of the resume state file.",
                             json_schema_extra=flags("--state-file"))
    progress: Literal["auto", "rich", "plain", "none"] = Field(
        "auto", description="Progress display: auto (rich on a terminal), rich, plain lines, or none.",
        json_schema_extra=flags("--progress"))
    report: ReportConfig = Field(default_factory=ReportConfig)

    def batch_sizes(self) -> tuple[int, int]:
        """(log lines, metric points) per request."""
        if self.batch_size == "auto":
            return AUTO_LOG_BATCH, AUTO_METRIC_BATCH
        return self.batch_size, self.batch_size


class DownloadConfig(_Transfer):
    """Configuration of ``ml-dash download`` (``--max-concurrent-*`` of 0.5.8 set ``workers``)."""

    namespace: str | None = Field(None, description="Namespace to read (default: the one of your token).",
                                  json_schema_extra=flags("--namespace"))
    overwrite: bool = Field(False, description="Replace local experiments instead of completing them.",
                            json_schema_extra=flags("--overwrite"))
    state_file: Path = Field(Path(".ml-dash-download-state.json"), description="Path of the resume state file.",
                             json_schema_extra=flags("--state-file"))
    batch_size: int = Field(10_000, gt=0, le=100_000, description="Log lines / metric points per request.",
                            json_schema_extra=flags("--batch-size"))
    concurrency: int | None = Field(None, ge=1, le=64, description="Alias of workers (0.5.8's flags).",
                                    json_schema_extra=flags("--max-concurrent-metrics", "--max-concurrent-files"))

    @property
    def parallel(self) -> int:
        return self.concurrency or self.workers


class ListConfig(_Client):
    """Configuration of ``ml-dash list``."""

    namespace: str | None = Field(None, description="Namespace to read (default: the one of your token).",
                                  json_schema_extra=flags("--namespace"))
    project: str | None = Field(None, description="List the experiments of this project (default: projects).",
                                json_schema_extra=flags("--project"))
    status: Literal["RUNNING", "COMPLETED", "FAILED", "CANCELLED"] | None = Field(
        None, description="Only experiments with this status.", json_schema_extra=flags("--status"))
    tags: str | None = Field(None, description="Only experiments with any of these tags (comma-separated).",
                             json_schema_extra=flags("--tags"))
    detailed: bool = Field(False, description="Accepted for compatibility (details are always shown).",
                           json_schema_extra=flags("--detailed"))
    json_output: bool = Field(False, description="Print JSON instead of a table.", json_schema_extra=flags("--json"))


class ServerAuthConfig(BaseModel):
    """Who may talk to the server."""

    model_config = _STRICT
    secret: SecretStr | None = Field(None, description="HS256 secret for username tokens and dashboard sessions "
                                                       "(default: generated once and kept in the database, so "
                                                       "every server process on it shares it).",
                                     json_schema_extra={"secret": True})
    legacy_username_tokens: bool | None = Field(
        None, description="Accept username tokens signed with ml-dash 0.5.x's built-in secret (default: only "
                          "when bound to a loopback address).")


class TieringConfig(BaseModel):
    model_config = _STRICT
    chunk_size: int = Field(10_000, ge=100, le=10_000_000, description="Points of a metric sealed together into one "
                                                                       "object in the blob store, once there are "
                                                                       "that many not sealed yet.")
    interval: float = Field(30.0, ge=0, description="Seconds between two background sealing passes of each server "
                                                    "process (0: none; `ml-dash serve compact` seals on demand).")
    log_keep_lines: int = Field(100_000, ge=0, description="Newest log lines of an experiment kept in the database; "
                                                          "older ones are archived to the blob store.")
    log_archive_age: float = Field(7 * 86400.0, ge=0, description="Seconds after which log lines (by their "
                                                                  "timestamp) are archived, however few (0: by "
                                                                  "count only).")
    log_segment_lines: int = Field(10_000, ge=10, le=1_000_000, description="Log lines archived together into one "
                                                                          "object (at most).")
    orphan_grace: float = Field(3600.0, ge=0, description="Seconds a sealed object nothing points to is kept "
                                                          "(a sealer writes the object first) before the sweep "
                                                          "deletes it.")


class ServerLimitsConfig(BaseModel):
    model_config = _STRICT
    db_connections: int = Field(16, ge=1, le=1000, description="Database connections of one server process at "
                                                               "most (a pool; with N processes the database sees "
                                                               "up to N times as many).")
    ingest_threads: int = Field(4, ge=1, le=256, description="Metric and log appends one server process runs at "
                                                            "once; more wait their turn, so reads (the dashboard's "
                                                            "series) do not queue behind a burst of writes.")
    max_json_bytes: int = Field(64 * 1024 * 1024, gt=0, description="Largest JSON request body (413 above).")
    max_file_bytes: int = Field(100 * 1024**3, gt=0, description="Largest uploaded file (413 above).")


class DashboardConfig(BaseModel):
    """The web dashboard that ``ml-dash serve`` shows at ``/``."""

    model_config = _STRICT
    enabled: bool = Field(True, description="Serve the dashboard at / (the REST API is served either way).")
    owner_token: SecretStr | None = Field(
        None, description="Login token of the server owner, printed in the dashboard URL; its session sees every "
                          "namespace (default: a new random token at every start).",
        json_schema_extra={"secret": True})
    session_hours: float = Field(12.0, gt=0, le=24 * 90, description="How long a dashboard login lasts.")
    poll_seconds: float = Field(2.0, gt=0, le=60, description="How often the browser asks a RUNNING experiment "
                                                              "for what is new.")
    max_series_points: int = Field(5000, ge=10, le=100_000, description="Most buckets one series request may ask "
                                                                         "for (the points= parameter).")


class ServeConfig(BaseModel):
    """Configuration of ``ml-dash serve``."""

    model_config = _STRICT
    host: str = Field("127.0.0.1", description="Address to bind.", json_schema_extra=flags("--host"))
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0: any free port).",
                      json_schema_extra=flags("--port"))
    data_dir: Path | None = Field(None, description="Where the embedded database and blobs live (default: "
                                                    "~/.ml-dash/server).", json_schema_extra=flags("--data-dir"))
    db: str | None = Field(None, description="Metadata store URL: sqlite:///path or postgresql://... "
                                             "(default: SQLite in the data dir).", json_schema_extra=flags("--db"))
    blobs: str | None = Field(None, description="Blob store URL: file:///dir or s3://bucket/prefix "
                                                "(default: a directory in the data dir).",
                              json_schema_extra=flags("--blobs"))
    workers: int = Field(1, ge=1, le=64, description="Server processes on this host, sharing the port (each "
                                                     "with its own connections; state lives in the database).",
                         json_schema_extra=flags("--workers"))
    log_requests: bool = Field(True, description="One JSON line per request on stderr.")
    auth: ServerAuthConfig = Field(default_factory=ServerAuthConfig)
    limits: ServerLimitsConfig = Field(default_factory=ServerLimitsConfig)
    tiering: TieringConfig = Field(default_factory=TieringConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else v


class ShowConfig(BaseModel):
    """Configuration of ``ml-dash show``: the dashboard over a local tree, on loopback, without login."""

    model_config = _STRICT
    path: Path = Field(Path(".ml-dash"), description="Local storage directory to show (either layout); never "
                                                     "written to.", json_schema_extra=flags("PATH"))
    host: str = Field("127.0.0.1", description="Address to bind: a loopback address only (no login is asked).",
                      json_schema_extra=flags("--host"))
    port: int = Field(8765, ge=0, le=65535, description="Port to bind (0: any free port).",
                      json_schema_extra=flags("--port"))
    open_browser: bool = Field(True, description="Open the dashboard in the web browser (--no-browser: don't).")
    poll_seconds: float = Field(1.0, gt=0, le=60, description="Seconds between two looks at the tree for new "
                                                              "experiments and appended lines.")
    batch_size: int = Field(10_000, gt=0, le=100_000, description="Metric points / log lines per import "
                                                                   "request.")
    data_dir: Path | None = Field(None, description="Where the private copy (SQLite + blobs) of each shown tree "
                                                    "is kept, one directory per tree (default: ~/.ml-dash/show).",
                                  json_schema_extra=flags("--data-dir"))
    log_requests: bool = Field(False, description="One JSON line per request on stderr.")

    @field_validator("path", "data_dir")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else v


class ImportConfig(_Client):
    """Configuration of ``ml-dash import tensorboard|mlflow|wandb SOURCE``."""

    kind: Literal["tensorboard", "mlflow", "wandb"] | None = Field(
        None, description="What SOURCE is: tensorboard, mlflow or wandb (the word after `ml-dash import`).")
    source: str | None = Field(None, description="The TensorBoard logdir, MLflow store (mlruns/ directory, .db file "
                               "or sqlite:/// URI) or W&B directory to import.", json_schema_extra=flags("PATH"))
    to: Path = Field(Path(".ml-dash"), description="Local tree the runs are imported into (with --remote: then "
                     "uploaded from it).", json_schema_extra=flags("--to"))
    project: str | None = Field(None, description="Project of every imported run (default: the source's own "
                                "grouping: MLflow experiment, W&B project; else the source directory's name).",
                                json_schema_extra=flags("--project"))
    folder: str | None = Field(None, description="Folder of every imported run, e.g. /imported/2025.",
                               json_schema_extra=flags("--folder"))
    dry_run: bool = Field(False, description="Read the source and show what would be imported; write nothing.",
                          json_schema_extra=flags("--dry-run"))
    strict: bool = Field(False, description="Refuse the whole import, before writing anything, if any input is "
                         "bad (default: report and skip it).", json_schema_extra=flags("--strict"))
    batch_size: int = Field(10_000, gt=0, le=1_000_000, description="Metric points written together per metric.",
                            json_schema_extra=flags("--batch-size"))
    progress: Literal["auto", "rich", "plain", "none"] = Field(
        "auto", description="Progress display: auto (rich on a terminal), rich, plain lines, or none.",
        json_schema_extra=flags("--progress"))

    @field_validator("to")
    @classmethod
    def _expand_to(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("folder")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        if v is not None and not v.strip("/"):
            raise ValueError("must name a folder, e.g. /imported")
        return v
