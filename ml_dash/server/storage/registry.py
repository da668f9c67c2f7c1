"""Storage chosen by URL scheme: ``sqlite:///path`` or ``postgresql://...`` for metadata,
``file:///dir`` or ``s3://bucket/prefix`` for blobs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ml_dash.errors import ConfigError
from ml_dash.server.storage.blobs import BlobStore, FileBlobStore, S3BlobStore
from ml_dash.server.storage.sql import DEFAULT_CONNECTIONS, SqlMetadataStore, open_postgres, open_sqlite

__all__ = ["METADATA_SCHEMES", "BLOB_SCHEMES", "open_blob_store", "open_metadata_store"]

METADATA_SCHEMES = ("sqlite", "postgresql", "postgres")
BLOB_SCHEMES = ("file", "s3")


def open_metadata_store(url: str, max_connections: int = DEFAULT_CONNECTIONS) -> SqlMetadataStore:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f"bad SQLite URL {url!r}", hint="use sqlite:///relative/path.db or sqlite:////abs/path.db")
        return open_sqlite(Path(path), max_connections)
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError("postgresql:// needs psycopg", hint="pip install 'ml-dash[postgres]'") from None
        return open_postgres(url, max_connections)
    raise ConfigError(f"no metadata store for {url!r}", hint=f"registered schemes: {', '.join(METADATA_SCHEMES)}")


def open_blob_store(url: str, staging: Path) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileBlobStore(Path(parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"bad S3 URL {url!r}", hint="use s3://bucket/prefix[?endpoint_url=http://host:port]")
        endpoint = parse_qs(parsed.query).get("endpoint_url", [None])[0]
        return S3BlobStore(parsed.netloc, parsed.path, staging, endpoint_url=endpoint)
    raise ConfigError(f"no blob store for {url!r}", hint=f"registered schemes: {', '.join(BLOB_SCHEMES)}")
