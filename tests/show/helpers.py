"""A live ``ml-dash show`` on 127.0.0.1 (a real process, stopped by its pid), and tree helpers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.server import ML_DASH, terminate


@dataclass
class LiveShow:
    url: str
    home: Path
    process: subprocess.Popen[str]
    log_path: Path
    env: dict[str, str]
    stdout: list[str]

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.splitlines() if line.startswith("{")]

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def experiments(self, project: str) -> dict[str, str]:
        """name -> id of the project's experiments in namespace local ({} while it has none)."""
        try:
            doc = self.get(f"/ui/projects/{project}/experiments?limit=500")
        except urllib.error.HTTPError:
            return {}
        return {row["name"]: row["id"] for row in doc["items"]}

    def total(self, exp_id: str, metric: str) -> int:
        for m in self.get(f"/experiments/{exp_id}/series")["metrics"]:
            if m["name"] == metric:
                return int(m["total"])
        return 0

    def read_line(self, pattern: str, timeout: float = 30) -> str:
        """The next stdout line matching ``pattern`` (lines read on the way are kept)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.stdout.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; got {self.stdout}; log: {self.log}")

    def stop(self) -> int:
        terminate(self.process)
        if self.process.stdout is not None:
            self.stdout += self.process.stdout.readlines()
            self.process.stdout.close()
        return self.process.returncode


@contextmanager
def live_show(tree: Path, home: Path, *extra: str) -> Iterator[LiveShow]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}
    env["ML_DASH_CONFIG_DIR"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"show-{time.time_ns()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([ML_DASH, "show", str(tree), "--no-browser", "--port", "0", "poll_seconds=0.3",
                                 "log_requests=true", *extra], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    show = LiveShow("", home, proc, log_path, env, [])
    try:
        line = show.read_line(r"listening on http://127\.0\.0\.1:\d+", timeout=60)
        show.url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)  # type: ignore[union-attr]
        yield show
    finally:
        show.stop()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last: {value!r})")
        time.sleep(0.05)


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and directory below ``root``: sha256, size and mtime (ns)."""
    out: dict[str, tuple[str, int, int]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(root))] = (digest, st.st_size, st.st_mtime_ns)
    return out
