"""The on-disk format: one model per record kind, the layout, and the readers.

Both the SDK (which writes trees) and ``ml-dash upload`` (which reads them) use
these models, so a tree the SDK writes is by construction a tree upload accepts.
"""

from ml_dash.records.experiment import ExperimentRecord
from ml_dash.records.files import FileEntry, FilesManifest
from ml_dash.records.layout import ExperimentPaths
from ml_dash.records.logs import LogLine
from ml_dash.records.metrics import MetricMetadata, MetricPoint
from ml_dash.records.parameters import ParametersRecord
from ml_dash.records.read import Problem, iter_jsonl, load_record

__all__ = [
    "ExperimentPaths",
    "ExperimentRecord",
    "FileEntry",
    "FilesManifest",
    "LogLine",
    "MetricMetadata",
    "MetricPoint",
    "ParametersRecord",
    "Problem",
    "iter_jsonl",
    "load_record",
]

# Every record model, by the name of its schema file in schemas/records/.
RECORD_MODELS = {
    "experiment": ExperimentRecord,
    "parameters": ParametersRecord,
    "log_line": LogLine,
    "metric_point": MetricPoint,
    "metric_metadata": MetricMetadata,
    "files_manifest": FilesManifest,
}
