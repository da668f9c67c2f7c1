"""How a training script's ``Experiment`` picks local, remote or hybrid mode.

Sources, highest first: explicit ``Experiment(...)`` arguments, ``ML_DASH_*`` variables,
the ``DREAMLAKE_*`` names of the seed docs, then ``~/.ml-dash/config.json``. The file
only supplies credentials and a server URL for a mode chosen elsewhere: config.json
alone never sends a training script's data to the network (a CLI user's
config.json must not silently turn every local script into a remote one).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ml_dash.errors import ConfigError

__all__ = ["MLDashConfigWarning", "ModeChoice", "SDKSettings", "choose_mode"]

DREAMLAKE_ALIASES = {"DREAMLAKE_API_URL": "remote", "DREAMLAKE_API_KEY": "api_key",
                     "DREAMLAKE_LOCAL_PATH": "local_path"}


class MLDashConfigWarning(UserWarning):
    """A setting was ignored (misspelt variable, unknown key)."""


class _MLDashEnv(PydanticBaseSettingsSource):
    """``ML_DASH_<FIELD>`` exactly, upper case only. (pydantic-settings' own env source,
    with ``case_sensitive=True``, would want ``ML_DASH_local_path``; without it, it also
    reads ``ml_dash_remote``.)"""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out = {}
        for name in self.settings_cls.model_fields:
            value = os.environ.get("ML_DASH_" + name.upper())
            if value is not None and name != "file_remote":
                out[name] = value
        return out


class _DreamlakeEnv(PydanticBaseSettingsSource):
    """The seed's DREAMLAKE_* names, below ML_DASH_*."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {key: os.environ[name] for name, key in DREAMLAKE_ALIASES.items() if os.environ.get(name)}


class _ConfigFileCredentials(PydanticBaseSettingsSource):
    """Credentials and the server URL from ~/.ml-dash/config.json (never the mode)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        from ml_dash.config.commands import config_dir
        from ml_dash.config.sources import read_config_file

        data = read_config_file(config_dir() / "config.json")
        out: dict[str, Any] = {}
        if data.get("remote_url") or data.get("remote"):
            out["file_remote"] = data.get("remote_url") or data.get("remote")
        for key in ("api_key", "username", "user_name"):
            if data.get(key):
                out["api_key" if key == "api_key" else "username"] = data[key]
        return out


class SDKSettings(BaseSettings):
    """``ML_DASH_MODE``, ``ML_DASH_REMOTE``, ``ML_DASH_API_KEY``, ``ML_DASH_LOCAL_PATH``, ..."""

    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    mode: Literal["auto", "local", "remote", "hybrid"] = Field("auto", description="auto, local, remote or hybrid.")
    remote: str | None = Field(None, description="Server URL (selects remote mode when mode is auto).")
    file_remote: str | None = Field(None, exclude=True, description="remote_url of config.json (never selects).")
    api_key: SecretStr | None = None
    username: str | None = None
    local_path: Path | None = Field(None, description="Local storage root (selects local mode when auto).")
    flush_interval: float = Field(1.0, gt=0, description="Seconds between background sends (remote mode).")
    # As large as `ml-dash upload`'s automatic sizes: per-request overhead stays off the training loop.
    log_batch_size: int = Field(1000, gt=0, description="Log lines per request (remote mode).")
    metric_batch_size: int = Field(10000, gt=0, description="Metric points per request (remote mode).")
    buffer_enabled: bool = Field(True, description="Send from a background thread (remote mode).")
    spool_dir: Path | None = Field(None, description="Where remote mode writes ahead before sending (default: "
                                                     "~/.ml-dash/spool); kept until the server acknowledged.")
    max_pending: int = Field(1_000_000, gt=0, description="Records queued for the server at most; past that, "
                                                          "logging waits for the server (never drops).")
    close_timeout: float | None = Field(None, ge=0, description="Seconds to keep trying to send queued records "
                                                                "at the end of a run (default: 30 remote, 5 hybrid).")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The tuple's order is the priority: explicit kwargs > ML_DASH_* > DREAMLAKE_* > config.json.
        return (init_settings, _MLDashEnv(settings_cls), _DreamlakeEnv(settings_cls),
                _ConfigFileCredentials(settings_cls))


@dataclass(frozen=True)
class ModeChoice:
    mode: str  # "local" | "remote" | "hybrid"
    local_path: Path | None
    remote: str | None
    api_key: str | None
    username: str | None
    settings: SDKSettings


def _warn_misspelt() -> None:
    from ml_dash.config.keys import did_you_mean
    from ml_dash.config.sources import known_env_names

    known = known_env_names()
    for name in os.environ:
        if name.startswith("ML_DASH_") and name not in known:
            guess = did_you_mean(name, sorted(known))
            warnings.warn(f"environment variable {name} is not an ml-dash setting and is ignored"
                          + (f" (did you mean {guess}?)" if guess else ""), MLDashConfigWarning, stacklevel=4)


def choose_mode(remote: str | None, local_path: str | os.PathLike[str] | None, api_key: str | None,
                username: str | None) -> ModeChoice:
    """Explicit arguments decide when given; otherwise the environment does; default local."""
    from pydantic import ValidationError

    _warn_misspelt()
    try:
        settings = SDKSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"ML_DASH_{key.upper()}: {err['msg']}", hint="fix or unset the environment variable") from None
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    user = username or settings.username
    if remote is not None or local_path is not None:  # explicit arguments win, as in 0.5.8
        mode = "hybrid" if remote and local_path else "remote" if remote else "local"
        return ModeChoice(mode, Path(local_path) if local_path else None, remote, key, user, settings)
    mode = settings.mode
    env_remote = settings.remote
    if mode == "auto":
        mode = ("hybrid" if settings.local_path else "remote") if env_remote else "local"
    url = env_remote or (settings.file_remote if mode in ("remote", "hybrid") else None)
    if mode in ("remote", "hybrid") and not url:
        raise ConfigError(f"ML_DASH_MODE={mode} needs a server URL",
                          hint="set ML_DASH_REMOTE (or remote_url in ~/.ml-dash/config.json)")
    path = settings.local_path or (Path(".ml-dash") if mode in ("local", "hybrid") else None)
    return ModeChoice(mode, path, url if mode != "local" else None, key, user, settings)
