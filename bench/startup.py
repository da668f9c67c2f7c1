"""Start-up time of the CLI, side by side with bare Python, in one run.

    .venv/bin/python bench/startup.py [--runs 15]

Alternates the commands, takes the median of ``--runs`` runs each, and prints each
command's time and its difference to ``python -c pass`` (the floor every command pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    ml_dash = str(BIN / "ml-dash")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ml-dash --help": [ml_dash, "--help"],
        "ml-dash upload --help": [ml_dash, "upload", "--help"],
        "ml-dash config show +profile=ci": [ml_dash, "config", "show", "+profile=ci"],
    }
    with tempfile.TemporaryDirectory() as home:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ML_DASH_")}, "ML_DASH_CONFIG_DIR": home}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                start = time.perf_counter()
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    print(f"start-up, median of {args.runs} runs (lower is better)")
    print(f"{'command':36}{'ms':>8}{'vs bare python':>18}")
    for name, values in times.items():
        ms = statistics.median(values) * 1000
        extra = "" if name == "python -c pass" else f"+{ms - base * 1000:.0f} ms ({ms / (base * 1000):.1f}x)"
        print(f"{name:36}{ms:8.1f}{extra:>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
