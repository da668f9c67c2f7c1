"""``exp.metrics("loss").append(value=..., step=...)`` and friends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_dash.errors import InvalidInputError
from ml_dash.records.layout import metric_dir_name

if TYPE_CHECKING:
    from ml_dash.sdk.experiment import Experiment

__all__ = ["MetricBuilder", "MetricsManager"]

_DICT = frozenset((dict,))
_accepted_names: set[str] = set()  # metric names metric_dir_name has accepted


def _check_point(point: Any, what: str) -> dict[str, Any]:
    if not isinstance(point, dict):
        raise InvalidInputError(f"{what} must be a dict of values, got {type(point).__name__}",
                                hint="e.g. {'loss': 0.5, 'step': 10}")
    if not point:
        raise InvalidInputError(f"{what} is empty", hint="pass at least one value, e.g. append(loss=0.5)")
    return point


class MetricBuilder:
    """One named series. ``description``/``tags``/``metadata`` apply when it is created."""

    def __init__(self, experiment: Experiment, name: str | None, description: str | None = None,
                 tags: list[str] | None = None, metadata: dict[str, Any] | None = None) -> None:
        if type(name) is not str or name not in _accepted_names:
            metric_dir_name(name)  # refuse names that would leave metrics/ right away
            if type(name) is str and len(_accepted_names) < 10_000:
                # exp.metrics("loss").append(...) in a loop, 0.5.8's idiom, checks the name once.
                _accepted_names.add(name)
        self._experiment = experiment
        self._name = name
        self._description = description
        self._tags = tags
        self._metadata = metadata

    def append(self, **point: Any) -> dict[str, Any]:
        """Append one point; returns ``{metricId, index, bufferedDataPoints, chunkSize}``."""
        # The checks of Experiment._writable, inlined (this runs once per point); it raises the errors.
        experiment = self._experiment
        if not experiment._is_open or experiment._write_protected:
            experiment._writable("append metrics")
        if not point:  # keyword arguments always make a dict: only emptiness is left to check
            _check_point(point, "metric point")
        return experiment._backend.append_metric(self._name, point, self._description, self._tags, self._metadata)

    log = append  # the seed's exp.metrics("train").log(loss=0.5)

    def append_batch(self, data_points: list[dict[str, Any]]) -> dict[str, Any]:
        """Append several points at once; returns ``{startIndex, endIndex, count, ...}``."""
        backend = self._experiment._writable("append metrics")
        if not isinstance(data_points, (list, tuple)) or not data_points:
            raise InvalidInputError("data_points cannot be empty", hint="pass a non-empty list of dicts")
        if set(map(type, data_points)) != _DICT or not all(data_points):
            # Something other than non-empty plain dicts: name it (dict subclasses pass).
            for i, p in enumerate(data_points):
                _check_point(p, f"data_points[{i}]")
        points = list(data_points)  # our own list: the caller may reuse theirs while a sender holds ours
        return backend.append_metric_batch(self._name, points, self._description, self._tags, self._metadata)

    def read(self, start_index: int = 0, limit: int = 1000) -> dict[str, Any]:
        if start_index < 0 or limit <= 0:
            raise InvalidInputError(f"read(start_index={start_index}, limit={limit}) is out of range",
                                    hint="start_index >= 0 and limit > 0")
        return self._experiment._readable("read metrics").read_metric(self._name, start_index, limit)

    def stats(self) -> dict[str, Any]:
        return self._experiment._readable("read metrics").metric_stats(self._name)

    def list_all(self) -> list[dict[str, Any]]:
        return self._experiment._readable("list metrics").list_metrics()


class MetricsManager:
    """``exp.metrics`` itself: call it with a name, or append with ``name=``."""

    def __init__(self, experiment: Experiment) -> None:
        self._experiment = experiment

    def __call__(self, name: str, description: str | None = None, tags: list[str] | None = None,
                 metadata: dict[str, Any] | None = None) -> MetricBuilder:
        return MetricBuilder(self._experiment, name, description, tags, metadata)

    def append(self, name: str | None = None, data: dict[str, Any] | None = None, **point: Any) -> dict[str, Any]:
        return MetricBuilder(self._experiment, name).append(**(data if data is not None else point))

    def append_batch(self, name: str | None = None, data_points: list[dict[str, Any]] | None = None,
                     description: str | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return MetricBuilder(self._experiment, name, description, tags, metadata).append_batch(data_points or [])

    def list_all(self) -> list[dict[str, Any]]:
        return self._experiment._readable("list metrics").list_metrics()
