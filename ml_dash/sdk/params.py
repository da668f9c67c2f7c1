"""``exp.params``: nested parameters, stored flattened with ``.``, merged on every set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_dash.records.parameters import flatten_params, unflatten_params

if TYPE_CHECKING:
    from ml_dash.sdk.experiment import Experiment

__all__ = ["ParametersBuilder"]


class ParametersBuilder:
    def __init__(self, experiment: Experiment) -> None:
        self._experiment = experiment

    def set(self, **params: Any) -> ParametersBuilder:
        """Merge ``params`` (nested dicts are flattened: ``model={"lr": 1}`` → ``model.lr``)."""
        backend = self._experiment._writable("set parameters")
        flat = flatten_params(params)
        if flat:  # 0.5.8 writes nothing for an empty set()
            backend.set_params(flat)
        return self

    log = set  # the 0.6 spelling

    def get(self, flatten: bool = True) -> dict[str, Any]:
        flat = self._experiment._readable("read parameters").get_params()
        return flat if flatten else unflatten_params(flat)

    flatten_dict = staticmethod(flatten_params)
    unflatten_dict = staticmethod(unflatten_params)
