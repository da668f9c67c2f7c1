"""What the routes share: the stores, the settings, and who is calling."""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets as secrets_module
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_dash.api.auth import LEGACY_SECRET, SLUG, hash_api_key, verify_jwt
from ml_dash.api.errors import ServerError
from ml_dash.config.models import ServeConfig
from ml_dash.server.storage.blobs import BlobStore
from ml_dash.server.storage.browse import experiment_by_id
from ml_dash.server.storage.registry import open_blob_store, open_metadata_store
from ml_dash.server.storage.sql import SqlMetadataStore
from ml_dash.server.storage.tiers import Segments, Tiering

__all__ = ["KEY_CACHE_SECONDS", "OWNER", "OWNER_SLUG", "Principal", "ServerState", "TrustedLoopback", "is_loopback",
           "loopback_request"]

KEY_CACHE_SECONDS = 2.0


OWNER_SLUG = "(owner)"  # shown in the request log for the server owner's dashboard session


@dataclass(frozen=True)
class Principal:
    """Who is calling: a namespace (API key, username token, or a key's dashboard session), or the
    server owner (the printed dashboard token), who reads every namespace and owns none."""

    namespace_id: int
    slug: str
    owner: bool = False
    read_only: bool = False  # `ml-dash show`'s loopback callers: the tree is the source of truth


OWNER = Principal(0, OWNER_SLUG, owner=True)  # namespace ids are never 0 (see ids.new_id)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The name of a Host header: ``127.0.0.1:8765`` → ``127.0.0.1``, ``[::1]:8765`` → ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def loopback_request(client_host: str | None, host_header: str | None) -> bool:
    """A request from this machine, addressed to this machine by name or address. The Host check
    keeps DNS rebinding out: a web page from elsewhere whose name resolves to 127.0.0.1 reaches a
    loopback socket, but its requests carry that other name."""
    return bool(client_host and host_header) and is_loopback(client_host or "") and is_loopback(
        _host_name(host_header or ""))


@dataclass(frozen=True)
class TrustedLoopback:
    """``ml-dash show``: loopback callers need no login and read namespace ``namespace``; only the
    bearer of ``writer_hash`` (the key of show's own importer) writes."""

    namespace_id: int
    namespace: str
    writer_hash: str
    csrf: str

    def principal(self, authorization: str | None) -> Principal:
        token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
        writer = bool(token) and hmac.compare_digest(hash_api_key(token).encode(), self.writer_hash.encode())
        return Principal(self.namespace_id, self.namespace, read_only=not writer)


def data_dir_for(cfg: ServeConfig) -> Path:
    if cfg.data_dir is not None:
        return cfg.data_dir.absolute()  # a relative one in file://{dir}/blobs would read as a host name
    from ml_dash.config.commands import config_dir

    return config_dir() / "server"


class ServerState:
    """Opened once per server process from a resolved :class:`ServeConfig`."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.data_dir = data_dir_for(cfg)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_url = cfg.db or f"sqlite:///{self.data_dir / 'ml-dash.db'}"
        self.blobs_url = cfg.blobs or f"file://{self.data_dir / 'blobs'}"
        self.store: SqlMetadataStore = open_metadata_store(self.db_url, cfg.limits.db_connections)
        self.blobs: BlobStore = open_blob_store(self.blobs_url, self.data_dir / "staging")
        # Sealed metric chunks: objects of their own beside the files' blobs (storage/tiers.py).
        self.store.segments = Segments(self.blobs.within("segments"))
        self.tiering = Tiering.configured(self.store, self.store.segments, cfg.tiering)
        self.secret = cfg.auth.secret.get_secret_value() if cfg.auth.secret else \
            self.store.shared_setting("secret", self._data_dir_secret)
        legacy = cfg.auth.legacy_username_tokens
        self.legacy_tokens = is_loopback(cfg.host) if legacy is None else legacy
        self._jwt_secrets = [self.secret] + ([LEGACY_SECRET] if self.legacy_tokens else [])
        self._key_cache: dict[str, tuple[Principal, float]] = {}
        owner = cfg.dashboard.owner_token
        # The dashboard URL's login token: configured, or new at every start (printed by `ml-dash serve`).
        self.owner_token = owner.get_secret_value() if owner else secrets_module.token_urlsafe(24)
        self.trusted: TrustedLoopback | None = None  # set by trust_loopback (ml-dash show) only
        # The appends' anyio.CapacityLimiter per event loop (routes/deps.in_ingest_thread).
        self.ingest_limiters: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def trust_loopback(self, namespace: str, writer_key: str) -> None:
        """No login for loopback callers (``ml-dash show``); refused unless bound to loopback."""
        if not is_loopback(self.cfg.host):
            raise ServerError("forbidden", f"a server bound to {self.cfg.host} cannot trust loopback callers",
                              hint="bind 127.0.0.1 (the default of ml-dash show)")
        ns = self.store.ensure_namespace(namespace)
        self.trusted = TrustedLoopback(int(ns["id"]), str(ns["slug"]), hash_api_key(writer_key),
                                       secrets_module.token_urlsafe(32))

    def _data_dir_secret(self) -> str:
        """The first secret of a database: the one this data dir kept before the database held it
        (so logins and tokens of an upgraded server stay valid), else a new one."""
        try:
            return str(json.loads((self.data_dir / "secret.json").read_text())["secret"])
        except (OSError, ValueError, KeyError, TypeError):
            return secrets_module.token_urlsafe(32)

    def close(self) -> None:
        self.store.close()

    # --- who is calling --------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ServerError("unauthenticated", "missing bearer token",
                              hint="send 'Authorization: Bearer <api key>' (create one: ml-dash serve token create NAME)")
        token = authorization[7:].strip()
        if token.count(".") == 2:
            claims = verify_jwt(token, self._jwt_secrets)
            if claims is not None:
                slug = str(claims.get("userName") or "")
                if not SLUG.match(slug):
                    raise ServerError("unauthenticated", "the token's userName is not a valid namespace name",
                                      hint="use a user name of letters, digits, . _ -, or an API key")
                ns = self.store.ensure_namespace(slug)
                return Principal(ns["id"], ns["slug"])
            hint = None if self.legacy_tokens else ("username tokens of ml-dash 0.5.x are refused unless the server "
                                                    "enables auth.legacy_username_tokens; use an API key")
            raise ServerError("unauthenticated", "invalid or expired token", hint=hint)
        digest = hash_api_key(token)
        cached = self._key_cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        ns = self.store.namespace_for_key(digest)
        if ns is None:
            raise ServerError("unauthenticated", "unknown or revoked API key",
                              hint="create one on the server: ml-dash serve token create NAME")
        principal = Principal(ns["id"], ns["slug"])
        # A revoked key keeps working for at most KEY_CACHE_SECONDS: one lookup per request would
        # otherwise be a database round trip for every batch of an upload.
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[digest] = (principal, time.monotonic() + KEY_CACHE_SECONDS)
        return principal

    def owner_token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.owner_token.encode())

    def experiment(self, principal: Principal, experiment_id: str) -> dict[str, Any]:
        """The experiment if it belongs to the caller's namespace (the owner: any namespace);
        403 otherwise (existing or not)."""
        try:
            numeric = int(experiment_id)
        except ValueError:
            numeric = -1
        if principal.owner:
            row = experiment_by_id(self.store, numeric) if numeric >= 0 else None
            if row is None:
                raise ServerError("not_found", f"experiment {experiment_id} does not exist",
                                  hint="open the experiment from the dashboard's project list")
            return row
        row = self.store.get_experiment(principal.namespace_id, numeric) if numeric >= 0 else None
        if row is None:
            raise ServerError("forbidden", f"experiment {experiment_id} is not in namespace '{principal.slug}'",
                              hint="use the API key of the namespace the experiment belongs to")
        return row
