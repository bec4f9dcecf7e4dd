"""Load, cancel, soak and a new-session storm against the whole suite, with small local models.

    .venv/bin/python bench/load.py [--clients 32] [--requests 4] [--soak 60] [--sessions 5000]

A loopback Hub (tests/hub_server.py) holds a small model for every demo (tests/factories.py);
the suite runs in its own process (`python app.py`), so its memory, CPU and temp-file disk are
measured alone. It prints, per endpoint at N concurrent gradio_client clients: errors, p50/p99
latency and throughput; then submit-then-cancel of three large CSV jobs (how many ran at once,
CPU after the last cancel); a soak of mixed traffic (errors, RSS); a storm of new sessions (RSS
growth); and the temp files' disk use before and after the sweep. Goals (issue 11): 0 errors
at 32 clients, RSS growth <= 100 MB over 5,000 new sessions, bounded disk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="demos-load-"))

from tests.hub_server import Server  # noqa: E402

HUB = Server()  # started before huggingface_hub is imported: it reads HF_ENDPOINT once
os.environ.update(
    HF_ENDPOINT=HUB.url,
    HF_HOME=str(WORK / "hf"),
    HF_TOKEN="hf_loopback",
    HF_HUB_DISABLE_XET="1",
    GRADIO_ANALYTICS_ENABLED="False",
)

import psutil  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from tests import factories  # noqa: E402


def endpoints(files: dict[str, Path]) -> dict[str, tuple]:
    """api_name -> the arguments of one valid request (tiny models: small inputs). Not here:
    /user_recommendations (needs a model trained on MovieLens itself, whose ratings it fetches
    from GroupLens) and the builder's endpoints (a web search, a session's own model)."""
    table = {"headers": ["Movie", "Stars"], "data": [["Movie 1 (1950)", 5], ["Movie 2 (1951)", 2]]}
    return {
        "/predict": (handle_file(files["photo"]), False, 0.5, True),
        "/classify": (handle_file(files["photo"]),),
        "/score": ("rotating shaft", "spinning axle", "F16"),
        "/rank": ("battery cell", "electrochemical cell\naccumulator\nsofa", "H04"),
        "/score_csv": (handle_file(files["csv"]),),
        "/recommend": (table, 10, 1, "stars"),
        "/similar_movies": ("Movie 1 (1950)", 10, 1),
        "/generate": ("a cat", "", 7.5, 0, 2, "DDIM", 64, 64, 1, 0, False),
        "/guidance_grid": ("a cat", "", "1, 7.5", 0, 2, "DDIM", 64, 64, 0, False),
    }


def make_files(root: Path, csv_rows: int) -> dict[str, Path]:
    photos = factories.colour_photos(root / "photos", per_class=1, side=64)
    pairs = factories.synthetic_pairs()
    rows = pairs.sample(n=csv_rows, replace=True, random_state=0)
    rows.to_csv(root / "pairs.csv", index=False)
    pairs.head(200).to_csv(root / "small.csv", index=False)
    return {
        "photo": next((photos / "red").iterdir()),
        "csv": root / "small.csv",
        "big_csv": root / "pairs.csv",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_suite(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**env, "GRADIO_SERVER_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=open(env["DEMO_BENCH_LOG"], "w"),  # noqa: SIM115 (lives as long as the server)
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            Client(url, verbose=False)
            return proc, url
        except Exception:
            time.sleep(0.2)
    raise TimeoutError("the suite did not start")


def rss(proc: psutil.Process) -> float:
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 1e6


def disk(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def concurrency(url: str, calls: dict, clients: int, requests: int) -> None:
    print(f"\n## {clients} concurrent clients, {requests} requests each, per endpoint")
    print(f"{'endpoint':<24}{'errors':>7}{'p50 s':>8}{'p99 s':>8}{'req/s':>8}")
    pool = [Client(url, verbose=False) for _ in range(clients)]
    for api, args in calls.items():
        times: list[float] = []
        errors: list[str] = []

        def one(client: Client, api: str = api, args: tuple = args, times=times, errors=errors):
            for _ in range(requests):
                t = time.perf_counter()
                try:
                    client.predict(*args, api_name=api)
                    times.append(time.perf_counter() - t)
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            list(ex.map(one, pool))
        wall = time.perf_counter() - start
        p50 = pct(times, 50) if times else float("nan")
        p99 = pct(times, 99) if times else float("nan")
        print(f"{api:<24}{len(errors):>7}{p50:>8.2f}{p99:>8.2f}{len(times) / wall:>8.1f}")
        for message in sorted(set(errors))[:3]:
            print(f"    {message[:150]}")


def cancels(url: str, server: psutil.Process, big_csv: Path) -> None:
    print("\n## Submit then cancel three large CSV jobs")
    client = Client(url, verbose=False)
    busy = []
    sampler = threading.Event()

    def sample() -> None:
        while not sampler.is_set():
            busy.append(server.cpu_percent(interval=0.25))

    threading.Thread(target=sample, daemon=True).start()
    for _ in range(3):
        job = client.submit(handle_file(big_csv), api_name="/score_csv")
        time.sleep(2)
        job.cancel()
    last = time.perf_counter()
    time.sleep(1.0)
    after = server.cpu_percent(interval=2.0)
    sampler.set()
    print(f"CPU while jobs ran (max of 0.25 s samples): {max(busy):.0f}% of one core")
    print(f"CPU 1-3 s after the last cancel: {after:.0f}% ({time.perf_counter() - last:.1f} s)")


def soak(url: str, calls: dict, seconds: float, clients: int, server: psutil.Process) -> None:
    print(f"\n## Soak: {seconds:.0f} s of mixed requests from {clients} clients")
    before, errors, done = rss(server), [], [0]
    stop = time.monotonic() + seconds
    rng = random.Random(0)

    def run(client: Client) -> None:
        while time.monotonic() < stop:
            api = rng.choice(list(calls))
            try:
                client.predict(*calls[api], api_name=api)
                done[0] += 1
            except Exception as e:
                errors.append(f"{api}: {type(e).__name__}: {e}")

    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(run, [Client(url, verbose=False) for _ in range(clients)]))
    print(f"requests {done[0]}, errors {len(errors)}, RSS {before:.0f} -> {rss(server):.0f} MB")
    for e in sorted(set(errors))[:3]:
        print(f"    {e[:150]}")


def storm(url: str, sessions: int, server: psutil.Process) -> None:
    print(f"\n## New-session storm: {sessions} sessions, one request each")
    clients = [Client(url, verbose=False) for _ in range(8)]

    def visit(client: Client, n: int) -> None:
        for _ in range(n):
            client.session_hash = uuid.uuid4().hex  # what a new visitor's page gets
            # a cheap request: the recommender's similar movies with no movie picked
            with contextlib.suppress(Exception):
                client.predict(None, 10, 1, api_name="/similar_movies")

    visit(clients[0], 50)  # warm: the first requests import and allocate
    before, start = rss(server), time.perf_counter()
    step = 1000
    for done in range(0, sessions, step):
        n = min(step, sessions - done)
        with ThreadPoolExecutor(len(clients)) as ex:
            list(ex.map(visit, clients, [n // len(clients) + 1] * len(clients)))
        seconds = time.perf_counter() - start
        print(f"{done + n:>6} sessions: RSS {rss(server) - before:+.1f} MB ({seconds:.0f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=4, help="per client and endpoint")
    p.add_argument("--soak", type=float, default=60, help="seconds of mixed traffic")
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--csv-rows", type=int, default=100_000, help="rows of the cancelled jobs")
    p.add_argument("--only", nargs="*", help="endpoints to load (default: all)")
    args = p.parse_args()

    work = WORK
    env = {
        **os.environ,
        "GRADIO_TEMP_DIR": str(work / "gradio"),
        "TMPDIR": str(work / "tmp"),
        "DEMO_BENCH_LOG": str(work / "server.log"),
        "DEMO_LIMIT_TEMP_AGE": "20",  # the hour-long sweep, shortened to watch it work
        "DEMO_LIMIT_TEMP_SWEEP": "10",
    }
    (work / "tmp").mkdir()
    from shared import hub as hubio

    print(f"building and pushing small models to the loopback Hub ({work})")
    for name, folder in factories.tiny_suite(work / "models").items():
        repo = f"bench/{name}"
        commit = hubio.push(folder, repo, patterns=None)
        env["DEMO_MODEL_" + name.upper().replace("-", "_")] = f"{repo}@{commit}"
    files = make_files(work, args.csv_rows)
    calls = endpoints(files)
    if args.only:
        calls = {k: v for k, v in calls.items() if k in args.only}

    proc, url = start_suite(env)
    server = psutil.Process(proc.pid)
    try:
        print(f"suite at {url}; RSS after start {rss(server):.0f} MB")
        warm = Client(url, verbose=False)
        for api, call in calls.items():
            warm.predict(*call, api_name=api)
        print(f"RSS with every model loaded {rss(server):.0f} MB")
        concurrency(url, calls, args.clients, args.requests)
        if "/score_csv" in calls:
            cancels(url, server, files["big_csv"])
        soak(url, calls, args.soak, min(8, args.clients), server)
        temp = [work / "gradio", work / "tmp"]
        print(f"\ntemp files after the load: {sum(disk(t) for t in temp):.1f} MB")
        storm(url, args.sessions, server)
        time.sleep(35)  # longer than TEMP_AGE + TEMP_SWEEP
        print(f"temp files after the sweep (age 20 s): {sum(disk(t) for t in temp):.1f} MB")
    finally:
        proc.terminate()
        proc.wait()
    print(f"\nserver log: {env['DEMO_BENCH_LOG']}")


if __name__ == "__main__":
    main()
