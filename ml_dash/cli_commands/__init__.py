"""Where ml-dash 0.5.8 kept its commands: ``ml_dash.cli_commands.upload`` (``discover_experiments``,
``ExperimentValidator``, ``ExperimentInfo``, ``ExperimentUploader``, ``UploadState``, ``cmd_upload``, ...),
kept for scripts written for it. The ``ml-dash`` command itself lives in ``ml_dash.cli``."""
