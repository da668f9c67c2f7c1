from __future__ import annotations

import subprocess
import sys

import ml_dash


def test_public_names_are_exactly_the_sdk_and_errors() -> None:
    assert ml_dash.__all__ == sorted(ml_dash.__all__)
    for name in ml_dash.__all__:
        assert getattr(ml_dash, name) is not None
    assert issubclass(ml_dash.InvalidInputError, ml_dash.MLDashError)


def test_importing_ml_dash_does_not_import_pydantic() -> None:
    code = "import sys, ml_dash; print('pydantic' in sys.modules, 'ml_dash.sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
