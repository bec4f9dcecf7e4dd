"""Cold start of the suite: process start to first HTTP 200, and the import time of app.py.

Usage: python bench/startup.py [--reps 5]. Goal on a 2-core machine: first 200 in < 5 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_200() -> float:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**ENV, "GRADIO_SERVER_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - start < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.02)
        raise TimeoutError("the suite did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait()


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=5)
    reps = p.parse_args().reps
    first_200()  # warm the OS file cache so every repetition measures the same thing
    starts = [first_200() for _ in range(reps)]
    imports = [import_time() for _ in range(reps)]
    print(f"suite start-up, {reps} repetitions (median, min, max in seconds)")
    print(f"{'measure':<28}{'median':>8}{'min':>8}{'max':>8}")
    for name, xs in [("process start -> first 200", starts), ("import app.py", imports)]:
        print(f"{name:<28}{statistics.median(xs):>8.2f}{min(xs):>8.2f}{max(xs):>8.2f}")
    verdict = "met" if statistics.median(starts) < 5 else "NOT met"
    print(
        f"goal first 200 < 5 s: {verdict}; share of start-up spent importing app.py: "
        f"{statistics.median(imports) / statistics.median(starts):.0%}"
    )


if __name__ == "__main__":
    main()
