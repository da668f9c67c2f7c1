"""``from ml_dash.auto_start import dxp``: the zero-setup experiment of ml-dash 0.5.8.

Importing this module creates, as 0.5.8 did, ``Experiment(name="dxp", project="scratch",
local_path=".ml-dash")`` (local mode: the tree ``.ml-dash/scratch/dxp/`` below the
current directory), starts it, and completes it when the interpreter exits (errors during
that last step are ignored)::

    from ml_dash.auto_start import dxp

    dxp.log("Hello from dxp!")
    dxp.params.set(lr=0.001)
    dxp.metrics("loss").append(step=0, value=0.5)

One difference: the storage root is made absolute when the module is imported, so a
script that changes directory later keeps writing the same tree (0.5.8 resolved
``.ml-dash`` against whatever the current directory was at each write). Like any explicit
``local_path``, it stays in local mode whatever ``ML_DASH_*`` variables say.
"""

from __future__ import annotations

import atexit
from pathlib import Path

from ml_dash.sdk.experiment import Experiment

__all__ = ["dxp"]

dxp = Experiment(name="dxp", project="scratch", local_path=Path(".ml-dash").absolute())
dxp.run.start()


def _cleanup() -> None:
    """Complete ``dxp`` at exit if the script has not closed it itself."""
    if dxp._is_open:
        try:
            dxp.run.complete()
        except Exception:  # noqa: BLE001 - as 0.5.8: never fail the interpreter's exit
            pass


atexit.register(_cleanup)
