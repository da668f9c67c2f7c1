"""TensorBoard source for the import bench: write a logdir, read it natively.

:func:`native_read` is TensorBoard's own read path: ``EventFileLoader`` (framing + CRC, ``Event``
parse, ``data_compat``/``dataclass_compat``) and ``tensor_util.make_ndarray`` per scalar, as the
scalars plugin does.

    (loaded by bench/import.py)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_TAGS = 10  # scalars per step, one event each (as SummaryWriter.add_scalar writes them)


def make_source(dest: Path, scalars: int) -> Path:
    """One run with ``scalars`` points (10 tags x scalars/10 steps); returns the logdir.

    Uses tensorboardX's synchronous ``EventsWriter`` with prebuilt protos: ``SummaryWriter.add_scalar``
    writes the same records but is ~15x slower (numpy checks, a queue and a writer thread per call).
    """
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary

    logdir = dest / "logs"
    (logdir / "run").mkdir(parents=True, exist_ok=True)
    writer = EventsWriter(str(logdir / "run" / "events"))
    tags = [f"train/m{k}" for k in range(_TAGS)]
    wall = time.time()
    for step in range(max(1, scalars // _TAGS)):
        for k, tag in enumerate(tags):
            value = Summary.Value(tag=tag, simple_value=step * 0.001 + k)
            writer.write_event(Event(wall_time=wall + step * 0.01, step=step, summary=Summary(value=[value])))
    writer.close()
    return logdir


def native_read(source: Path) -> int:
    """Every scalar through TensorBoard's EventFileLoader, as TensorBoard reads it; returns the count."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    count = 0
    for path in sorted(p for p in source.rglob("*") if "tfevents" in p.name):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    tensor_util.make_ndarray(value.tensor).item()
                    count += 1
    return count
