"""Real storage backends for tests: SQLite + files, and PostgreSQL (pgserver) + S3 (moto's server).

If PostgreSQL or the S3 server cannot start, the tests that need them FAIL with a
message saying so: the storage contract must never pass by silently running half.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

S3_BUCKET = "ml-dash-test"


def _fail(what: str, exc: BaseException) -> None:
    pytest.fail(f"{what} could not be started ({type(exc).__name__}: {exc}); the tests against it did NOT run. "
                "Install the dev extra (scripts/setup.sh) or fix the environment.", pytrace=False)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))  # platformdirs warns without
    try:
        import pgserver

        server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
        uri = server.get_uri()
    except Exception as exc:  # noqa: BLE001 - any failure must be loud
        _fail("PostgreSQL (pgserver)", exc)
        raise
    yield uri
    server.cleanup()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        import boto3
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=S3_BUCKET)
    except Exception as exc:  # noqa: BLE001
        _fail("the S3 server (moto)", exc)
        raise
    yield endpoint
    server.stop()


def fresh_postgres_db(server_uri: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_uri.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(params=["sqlite+file", "postgres+s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """``{"db": url, "blobs": url}`` of a fresh, empty store pair."""
    if request.param == "sqlite+file":
        return {"db": f"sqlite:///{tmp_path / 'meta.db'}", "blobs": f"file://{tmp_path / 'blobs'}"}
    pg = request.getfixturevalue("postgres_server")
    s3 = request.getfixturevalue("s3_server")
    return {"db": fresh_postgres_db(pg), "blobs": f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:8]}?endpoint_url={s3}"}
