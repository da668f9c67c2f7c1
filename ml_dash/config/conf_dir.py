"""Where the packaged defaults (``conf/``) are: inside the wheel, or at the repo top level."""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["conf_dir"]


@cache
def conf_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):  # wheel, then editable/source checkout
        if (candidate / "upload.yaml").is_file():
            return candidate
    from ml_dash.errors import ConfigError

    raise ConfigError("the packaged configuration (conf/upload.yaml) is missing",
                      hint="reinstall ml-dash: pip install --force-reinstall ml-dash")
