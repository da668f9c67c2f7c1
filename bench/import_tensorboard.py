"""TensorBoard source for the import bench: write a logdir, read it natively, read it with ours.

:func:`native_read` is TensorBoard's own read path: ``EventFileLoader`` (framing + CRC, ``Event``
parse, ``data_compat``/``dataclass_compat``) and ``tensor_util.make_ndarray`` per scalar, as the
scalars plugin does. The CLI also times the floor under both (``RawEventFileLoader`` + parse).

    python bench/import_tensorboard.py --scalars 100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


def raw_read(source: Path) -> int:
    """The floor: TensorBoard's record reader and the Event parse only; returns the number of values."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    count = 0
    for path in sorted(p for p in source.rglob("*") if "tfevents" in p.name):
        for data in RawEventFileLoader(str(path)).Load():
            count += len(Event.FromString(data).summary.value)
    return count


def main() -> None:
    from ml_dash.importers.source import Point
    from ml_dash.importers.tensorboard_source import runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scalars", type=int, default=100_000)
    args = parser.parse_args()
    import tensorboard.data_compat  # noqa: F401  (library imports outside the timings)
    import tensorboardX  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        source = make_source(Path(tmp), args.scalars)
        made = time.perf_counter() - t
        size = sum(p.stat().st_size for p in source.rglob("*tfevents*"))
        timings = {}
        for label, read in [("raw_read", raw_read), ("native_read", native_read),
                            ("ours", lambda s: sum(isinstance(r, Point) for run in runs(s)
                                                   for r in run.records()))]:
            t = time.perf_counter()
            count = read(source)
            timings[label] = time.perf_counter() - t
            print(f"{label:12s} {timings[label]:8.2f} s  ({count} values, {count / timings[label]:,.0f}/s)")
    print(f"make_source  {made:8.2f} s  ({args.scalars} scalars, event file {size / 1e6:.1f} MB)")
    print(f"ours/native  {timings['ours'] / timings['native_read']:8.2f}")
    print(f"ours/raw     {timings['ours'] / timings['raw_read']:8.2f}")


if __name__ == "__main__":
    main()
