from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml_dash.api.auth import hash_api_key
from ml_dash.config.models import ServeConfig
from ml_dash.server.app import create_app
from ml_dash.server.state import ServerState
from tests.helpers.backends import backend, postgres_server, s3_server  # noqa: F401 - fixtures

ALICE_KEY = "mld_alice_test_key"
BOB_KEY = "mld_bob_test_key"


def make_state(tmp_path: Path, stores: dict[str, str] | None = None, **cfg: Any) -> ServerState:
    stores = stores or {"db": f"sqlite:///{tmp_path / 'meta.db'}", "blobs": f"file://{tmp_path / 'blobs'}"}
    st = ServerState(ServeConfig(data_dir=tmp_path / "data", log_requests=False, **stores, **cfg))
    for name, ns, key in (("alice-key", "alice", ALICE_KEY), ("bob-key", "bob", BOB_KEY)):
        st.store.create_api_key(name, ns, hash_api_key(key))
    return st


class Api:
    """A TestClient per namespace over one in-process app (real routes, real stores)."""

    def __init__(self, st: ServerState) -> None:
        self.state = st
        self.app = create_app(st)
        self.anon = TestClient(self.app, raise_server_exceptions=False)
        self.alice = TestClient(self.app, headers={"Authorization": f"Bearer {ALICE_KEY}"},
                                raise_server_exceptions=False)
        self.bob = TestClient(self.app, headers={"Authorization": f"Bearer {BOB_KEY}"},
                              raise_server_exceptions=False)

    def experiment(self, client: TestClient | None = None, project: str = "vision", name: str = "run-1",
                   **body: Any) -> str:
        r = (client or self.alice).post(f"/projects/{project}/experiments", json={"name": name, **body})
        assert r.status_code == 201, r.text
        return str(r.json()["experiment"]["id"])

    def close(self) -> None:
        for c in (self.anon, self.alice, self.bob):
            c.close()
        self.state.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    a = Api(make_state(tmp_path))
    yield a
    a.close()


@pytest.fixture
def api_any(tmp_path: Path, backend: dict[str, str]) -> Iterator[Api]:  # noqa: F811
    """The same API over every storage backend."""
    a = Api(make_state(tmp_path, backend))
    yield a
    a.close()
