"""Which commands are configured declaratively, and how their keys are named outside the schema."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GLOBAL_ENV", "CommandSpec", "config_dir", "get_spec"]

# ML_DASH_* variables that are not configuration keys of a command but are known.
GLOBAL_ENV = {
    "ML_DASH_CONFIG_DIR": "moves ~/.ml-dash",
    "ML_DASH_DEBUG": "show tracebacks",
    "ML_DASH_PROFILE": "select a profile",
    "ML_DASH_MODE": "SDK: auto, local, remote or hybrid",
    "ML_DASH_LOCAL_PATH": "SDK: local storage root",
    "ML_DASH_FLUSH_INTERVAL": "SDK: seconds between background flushes (remote mode)",
    "ML_DASH_LOG_BATCH_SIZE": "SDK: log lines per request (remote mode)",
    "ML_DASH_METRIC_BATCH_SIZE": "SDK: metric points per request (remote mode)",
    "ML_DASH_BUFFER_ENABLED": "SDK: buffer records in a background thread",
    "ML_DASH_CLOSE_TIMEOUT": "SDK: seconds to keep sending queued records at the end of a run",
    "ML_DASH_MAX_PENDING": "SDK: records queued for the server before logging waits for it",
    "ML_DASH_SPOOL_DIR": "SDK: where remote mode writes ahead (default ~/.ml-dash/spool)",
    "ML_DASH_SKIP_COMPAT": "tests: skip the real-0.5.8 compatibility tests",
}


@dataclass(frozen=True)
class CommandSpec:
    """How one command's configuration is found: its model, YAML, file section and aliases."""

    name: str
    model_path: str  # "module:Class", imported lazily
    primary: str  # YAML name in conf/
    file_section: str  # section of config.json for any key
    file_aliases: dict[str, str] = field(default_factory=dict)  # top-level config.json key -> dotted key
    env_aliases: dict[str, str] = field(default_factory=dict)  # extra env var -> dotted key
    env_prefix: str = "ML_DASH_"

    def model(self) -> type:
        import importlib

        module, _, cls = self.model_path.partition(":")
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


_CLIENT_FILE_ALIASES = {
    "remote_url": "remote",
    "remote": "remote",
    "api_key": "api_key",
    "username": "username",
    "user_name": "username",
}

UPLOAD = CommandSpec(
    name="upload",
    model_path="ml_dash.config.models:UploadConfig",
    primary="upload",
    file_section="upload",
    file_aliases={**_CLIENT_FILE_ALIASES, "default_batch_size": "batch_size"},
    env_aliases={"ML_DASH_REMOTE_URL": "remote", "ML_DASH_USER_NAME": "username"},
)

SERVE = CommandSpec(
    name="serve",
    model_path="ml_dash.config.models:ServeConfig",
    primary="serve",
    file_section="server",
    env_prefix="ML_DASH_SERVER_",
)

# download and list read the server settings of upload too (ML_DASH_REMOTE, ML_DASH_API_KEY, ...).
_SHARED_ENV = {"ML_DASH_REMOTE": "remote", "ML_DASH_API_KEY": "api_key", "ML_DASH_USERNAME": "username",
               "ML_DASH_REMOTE_URL": "remote", "ML_DASH_USER_NAME": "username"}

def _reader(name: str, model: str) -> CommandSpec:
    """download and list: their own keys under ML_DASH_<NAME>_*, plus the shared server settings."""
    return CommandSpec(name=name, model_path=f"ml_dash.config.models:{model}", primary=name, file_section=name,
                       file_aliases=dict(_CLIENT_FILE_ALIASES, namespace="namespace"), env_aliases=_SHARED_ENV,
                       env_prefix=f"ML_DASH_{name.upper()}_")


DOWNLOAD = _reader("download", "DownloadConfig")
LIST = _reader("list", "ListConfig")

SHOW = CommandSpec(
    name="show",
    model_path="ml_dash.config.models:ShowConfig",
    primary="show",
    file_section="show",
    env_prefix="ML_DASH_SHOW_",
)

# import reads the server settings of upload too (for --remote), its own keys under ML_DASH_IMPORT_*.
IMPORT = CommandSpec(name="import", model_path="ml_dash.config.models:ImportConfig", primary="import",
                     file_section="import", file_aliases=dict(_CLIENT_FILE_ALIASES), env_aliases=_SHARED_ENV,
                     env_prefix="ML_DASH_IMPORT_")

SPECS: dict[str, CommandSpec] = {"upload": UPLOAD, "serve": SERVE, "download": DOWNLOAD, "list": LIST,
                                 "show": SHOW, "import": IMPORT}


def get_spec(name: str) -> CommandSpec:
    return SPECS[name]


def config_dir(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``~/.ml-dash``, or ``ML_DASH_CONFIG_DIR``."""
    env = os.environ if env is None else env
    return Path(env.get("ML_DASH_CONFIG_DIR") or "~/.ml-dash").expanduser()
