"""Build your own classifier: the time from "search" to "pushed" with the CPU defaults.

Usage: python bench/build_classifier.py [--classes bird,forest] [--per-class 30] [--epochs 3]

The same steps the Space runs when a visitor clicks Search, Train and Push, with the CPU
defaults (the `classifier-base-cpu` base, resnet18, at 160 px; 30 photos per category; 1 frozen
+ 3 epochs), against loopback stand-ins: the image search is tests/search_stub.py (the
DuckDuckGo response shape through ddgs, photos served from 127.0.0.1 at 400×400 JPEG, with
its broken files and duplicates), the Hub is tests/hub_server.py, and the base is resnet18's
architecture with random weights pushed there as `timm/resnet18.a1_in1k` (the same compute as
the real weights). A real search adds the provider's answer and downloads from many servers
(see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hub_server import Server  # noqa: E402

hub_server = Server()  # before huggingface_hub is imported: it reads HF_ENDPOINT once
os.environ.update(
    HF_ENDPOINT=hub_server.url,
    HF_HOME=tempfile.mkdtemp(prefix="bench-hf-"),
    HF_TOKEN="hf_loopback_bench_token",
    HF_HUB_DISABLE_XET="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    GRADIO_ANALYTICS_ENABLED="False",
    DEMO_BUILD_ROOT=tempfile.mkdtemp(prefix="bench-build-"),
    DEMO_FETCH_ALLOW_LOOPBACK="1",
)
os.environ.pop("HF_HUB_OFFLINE", None)

import timm  # noqa: E402

from models.image_classifier import BASES, job, search, share  # noqa: E402
from models.image_classifier import workspace as wsp  # noqa: E402
from shared import hub  # noqa: E402
from tests.search_stub import Stub  # noqa: E402


def fake_base(repo: str) -> None:
    """The base's architecture and config with random weights, pushed as `repo`."""
    arch = repo.split("/")[1]
    model = timm.create_model(arch, pretrained=False)
    folder = Path(tempfile.mkdtemp()) / "base"
    timm.models.save_for_hf(model, folder, safe_serialization=True)
    hub.push(folder, repo)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", default="bird,forest")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    names = args.classes.split(",")
    palette = [(200, 60, 60), (60, 170, 70), (60, 80, 200), (220, 200, 40)] * 3
    colours = dict(zip(names, palette[: len(names)], strict=True))
    stub = Stub(colours, per_query=args.per_class + 10, side=400)
    os.environ["DEMO_IMAGE_SEARCH_ENDPOINT"] = stub.url
    fake_base(BASES["cpu"][1])

    t0 = time.perf_counter()
    ws = wsp.create("bench")
    *_, last = search.collect(ws, search.parse_categories(args.classes, "photo"), args.per_class)
    t_search = time.perf_counter()
    plan = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), "cpu", args.epochs)
    print(plan.describe().replace("**", ""))
    epochs, review = [], None
    for kind, item in job.run(vars(plan)):
        if kind == "epoch":
            epochs.append(item)
            print(f"  epoch {item['epoch']} ({item['phase']}): {item['seconds']:.1f} s")
        elif kind == "done":
            review = item
    t_train = time.perf_counter()
    commit = share.push(ws, "bench/my-classifier", "cpu", review, None, private=False)
    t_push = time.perf_counter()
    print(f"\nphotos kept: {ws.counts()}; {last.text()}")
    print(f"validation accuracy {review['metrics']['accuracy']:.1%} (random base weights)")
    print(f"pushed bench/my-classifier@{commit[:8]}")
    rows = [
        ("search (search + download + checks)", t_search - t0),
        ("train (1 frozen + epochs) + review", t_train - t_search),
        ("push (card, upload)", t_push - t_train),
        ("search → pushed", t_push - t0),
    ]
    print(f"\nestimate shown before training: {plan.seconds:.0f} s")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
