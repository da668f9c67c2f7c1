"""05 — upload a local tree from Python (the seed's API), after checking it.

    ML_DASH_REMOTE=http://127.0.0.1:8000 ML_DASH_API_KEY=... python examples/05_upload.py ROOT
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ml_dash.cli_commands.upload import ExperimentValidator, cmd_upload, discover_experiments


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".ml-dash")
    validator = ExperimentValidator(strict=True)
    for exp in discover_experiments(root):
        result = validator.validate_experiment(exp)
        print(f"{exp.project}/{exp.experiment}: {'valid' if result.is_valid else result.errors}")
    args = argparse.Namespace(path=str(root), remote=os.environ["ML_DASH_REMOTE"],
                              api_key=os.environ["ML_DASH_API_KEY"], user_name=None, project=None, experiment=None,
                              dry_run=False, strict=True, verbose=False, batch_size=100, skip_logs=False,
                              skip_metrics=False, skip_files=False, skip_params=False, resume=False,
                              state_file=".ml-dash-upload-state.json")
    return cmd_upload(args)


if __name__ == "__main__":
    raise SystemExit(main())
