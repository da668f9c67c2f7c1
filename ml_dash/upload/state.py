"""The resume state file, in the seed's format (and nothing else: never a config dump).

::

    {"local_path": "/abs/root", "remote_url": "http://...", "completed_experiments": ["p/e", ...],
     "failed_experiments": [...], "in_progress_experiment": "p/e" | null, "timestamp": "2026-...T..."}

It is rewritten atomically before and after every experiment, so a kill at any moment
leaves a readable file. Resuming also works below the experiment: the server says how
far each stream got, so even an experiment that was in progress loses and repeats
nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ml_dash.records.jsonio import atomic_write_text

__all__ = ["UploadState", "load_state"]


@dataclass
class UploadState:
    path: Path
    local_path: str
    remote_url: str
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    in_progress: str | None = None
    timestamp: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_json(self) -> dict[str, object]:
        return {"local_path": self.local_path, "remote_url": self.remote_url,
                "completed_experiments": list(self.completed), "failed_experiments": list(self.failed),
                "in_progress_experiment": self.in_progress, "timestamp": self.timestamp}

    def save(self) -> None:
        self.timestamp = datetime.now().isoformat()
        atomic_write_text(self.path, json.dumps(self.to_json(), indent=2), fsync=False)

    def started(self, key: str) -> None:
        with self._lock:
            self.in_progress = key
            self.save()

    def finished(self, key: str, ok: bool) -> None:
        with self._lock:
            target = self.completed if ok else self.failed
            if ok and key in self.failed:
                self.failed.remove(key)
            if key not in target:
                target.append(key)
            if self.in_progress == key:
                self.in_progress = None
            self.save()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def load_state(path: Path) -> UploadState | None:
    """The saved state, or None when missing or unreadable (then the upload starts fresh)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return UploadState(path=path, local_path=str(data["local_path"]), remote_url=str(data["remote_url"]),
                           completed=[str(x) for x in data.get("completed_experiments") or []],
                           failed=[str(x) for x in data.get("failed_experiments") or []],
                           in_progress=data.get("in_progress_experiment"), timestamp=str(data.get("timestamp") or ""))
    except (KeyError, TypeError):
        return None
