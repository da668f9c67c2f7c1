"""The seed's Python API location (``ml_dash.cli_commands.upload``), kept for scripts written for it."""
