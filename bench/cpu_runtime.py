"""The CPU fast path against PyTorch eager, in one run (issue 15).

Usage: python bench/cpu_runtime.py [--reps 30] [--pairs 512] [--archs resnet18 convnext_tiny]
                                   [--no-guards]

Classifier: full-size architectures with random weights at 224 px (37 classes, like the pets
model), a 500×375 JPEG pet photo. p50/p90 of the Space's `predict` (file -> answer, no Grad-CAM)
with PyTorch eager, with the fast path (model.onnx on OpenVINO, the shipped engine) and with the
same graph on ONNX Runtime, at 1 and 2 threads; the same with Grad-CAM; the first request after
a load against a warm one. Goals (2 threads): convnext_tiny <= 0.75x eager, resnet18 <= 0.65x.

Patent scorer: deberta-v3-small's architecture with random weights (a WordPiece tokenizer trained
on the data stands in for its own), pairs of the real data. Pairs/s of `score_texts`, batched
as the Space batches (sorted by length, 64 a batch), with PyTorch eager, the fp32 graph and the
int8 graph, and of the naive loop (one pair at a time, eager). Goals: >= 2x eager batched and
>= 6x the naive loop.

Accuracy guards (real data in $DEMO_DATA): a resnet18 trained from scratch on the pets sample
and a small DeBERTa trained from scratch on the patent pairs, through `train`, which exports and
guards; the numbers it recorded in metrics.json are printed.

The two sides of every ratio are measured interleaved, rep after rep, so that load from other
processes on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["DEMO_DEVICE"] = "cpu"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.image_classifier import photo  # noqa: E402
from models.image_classifier import NAME  # noqa: E402
from models.image_classifier import onnx_export as classifier_export  # noqa: E402
from models.image_classifier import predict as classifier  # noqa: E402
from models.image_classifier import runtime as classifier_runtime  # noqa: E402
from models.patent_similarity import data as patent_data  # noqa: E402
from models.patent_similarity import onnx_export as scorer_export  # noqa: E402
from models.patent_similarity import runtime as scorer_runtime  # noqa: E402
from models.patent_similarity.predict import Predictor  # noqa: E402
from shared import registry  # noqa: E402
from shared.suite import load_space  # noqa: E402
from tests.factories import DEBERTA_V3_SMALL, tiny_timm, usppm_base, wordpiece  # noqa: E402

DATA = Path(os.environ.get("DEMO_DATA", ROOT.parent / "shared" / "data"))
Rows = list[tuple[str, str, str]]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: dict[str, Callable], reps: int) -> dict[str, list[float]]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return times


def ms(times: list[float], q: float) -> float:
    return float(np.percentile(times, q)) * 1000


# --- the classifier ---------------------------------------------------------------------------


def space_predict(app, clf: classifier.Classifier, payload: dict, cam: bool) -> Callable:
    """The Space's `predict` served by `clf` (the registry keeps one model per name, so the
    bench swaps the loaded one in before each call)."""

    def run() -> object:
        registry._cache[NAME] = clf
        return app.predict(payload, False, 0.5, cam)

    return run


def bench_classifier(arch: str, folder: Path, image: Path, reps: int) -> Rows:
    tiny_timm(folder, [f"breed {i}" for i in range(37)], arch, size=224)
    model = classifier.load(folder, runtime="torch").model
    seconds = timed(lambda: classifier_export.export(model, folder, (224, 224)))
    rows = [(arch, "export to model.onnx (train time)", f"{seconds:.1f} s")]
    app = load_space("image_classifier")
    payload = {"path": str(image), "url": None}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        eager = classifier.load(folder, runtime="torch")
        fast = classifier.load(folder)  # the shipped engine (OpenVINO)
        ort = classifier.Classifier(
            eager.model,
            eager.labels,
            graph=classifier_runtime.Graph(folder / "model.onnx", engine="onnxruntime"),
        )
        fns = {
            "PyTorch eager": space_predict(app, eager, payload, cam=False),
            f"fast path ({fast.graph.engine})": space_predict(app, fast, payload, cam=False),
            "graph on onnxruntime": space_predict(app, ort, payload, cam=False),
        }
        t = interleaved(fns, reps)
        base, best = np.median(t["PyTorch eager"]), min(t["PyTorch eager"])
        for name, ts in t.items():
            rows.append(
                (
                    arch,
                    f"{threads} thread(s): Space predict, {name}",
                    f"{ms(ts, 50):.1f} / {ms(ts, 90):.1f} / {min(ts) * 1000:.1f} ms "
                    f"({np.median(ts) / base:.2f}x; min {min(ts) / best:.2f}x)",
                )
            )
    # Grad-CAM (on by default in the Space), 2 threads
    cams = interleaved(
        {
            "eager": space_predict(app, eager, payload, cam=True),
            "fast": space_predict(app, fast, payload, cam=True),
        },
        max(5, reps // 3),
    )
    ratio = np.median(cams["fast"]) / np.median(cams["eager"])
    rows.append(
        (
            arch,
            "2 threads: Space predict + Grad-CAM, eager / fast",
            f"{ms(cams['eager'], 50):.1f} / {ms(cams['fast'], 50):.1f} ms ({ratio:.2f}x)",
        )
    )
    # The first request after a load (the loader runs the graph once) against the next ones,
    # with no other model of this bench alive (a Space holds one).
    del eager, fast, ort, fns
    registry.unload(NAME)
    gc.collect()
    loads, firsts, warms = [], [], []
    for _ in range(3):
        t0 = time.perf_counter()
        fresh = classifier.load(folder)
        loads.append(time.perf_counter() - t0)
        run = space_predict(app, fresh, payload, cam=False)
        firsts.append(timed(run))
        warms.append(np.median([timed(run) for _ in range(5)]))
        del fresh, run
        gc.collect()
    load, first, warm = np.median(loads), np.median(firsts), np.median(warms)
    rows.append(
        (
            arch,
            "2 threads: load / first request / warm (fast path)",
            f"{load * 1000:.0f} / {first * 1000:.1f} / {warm * 1000:.1f} ms "
            f"(first = {first / warm:.2f}x warm)",
        )
    )
    registry.unload(NAME)
    return rows


# --- the patent scorer ------------------------------------------------------------------------


def bench_patent(folder: Path, n_pairs: int, rounds: int) -> Rows:
    usppm = DATA / "usppm"
    df = patent_data.read_pairs(usppm / "train.csv")
    titles = patent_data.read_cpc(usppm / "cpc_titles.csv")
    sample = df.sample(n=n_pairs, random_state=0)
    tokenizer = wordpiece(
        pd.concat([df.anchor, df.target]).tolist() + [t.lower() for t in titles.values()],
        vocab_size=8000,
        max_length=512,
    )
    from transformers import AutoModelForSequenceClassification, DebertaV2Config

    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = DebertaV2Config(**DEBERTA_V3_SMALL, num_labels=1, problem_type="regression")
    config.use_cpc_titles = True
    model = AutoModelForSequenceClassification.from_config(config).eval()
    eager = Predictor(model, tokenizer, titles)
    texts = [eager.text(a, t, c)[0] for a, t, c in sample[["anchor", "target", "context"]].values]
    lengths = [len(x) for x in tokenizer(texts)["input_ids"]]
    t0 = time.perf_counter()
    paths = scorer_export.candidates(model, folder)  # export, fold, quantize: as `train` does
    export_s = time.perf_counter() - t0
    fp32, int8 = paths["fp32"], paths["int8"]
    graphs = {
        "fp32 graph": Predictor(scorer_runtime.Graph(fp32, config), tokenizer, titles),
        "int8 graph": Predictor(scorer_runtime.Graph(int8, config), tokenizer, titles),
    }
    # the baseline: eager as the Space batched before the fast path (64 a batch on a CPU)
    fns = {"PyTorch eager, 64 a batch (before)": lambda: eager.score_texts(texts, 64)}
    fns |= {f"PyTorch eager, {eager.batch_size} a batch": lambda: eager.score_texts(texts)}
    for k, graph in graphs.items():
        fns[f"{k}, {graph.batch_size} a batch"] = lambda g=graph: g.score_texts(texts)
    t = interleaved(fns, rounds)
    few = texts[:48]

    def naive() -> None:
        with torch.inference_mode():
            for text in few:
                model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()

    naive_s = min(timed(naive) for _ in range(2)) / len(few)
    reference = eager.score_texts(texts)
    rows = [
        (
            "deberta-v3-small",
            "pairs, tokens",
            f"{len(texts)} pairs, {np.mean(lengths):.1f} tokens on average (max {max(lengths)})",
        ),
        (
            "deberta-v3-small",
            "export, fold, quantize to int8 (train time)",
            f"{export_s:.0f} s",
        ),
        (
            "deberta-v3-small",
            "graph size fp32 / int8",
            f"{fp32.stat().st_size / 1e6:.0f} / {int8.stat().st_size / 1e6:.0f} MB",
        ),
        ("deberta-v3-small", "naive loop (eager, 1 pair a call)", f"{1 / naive_s:.1f} pairs/s"),
    ]
    before = "PyTorch eager, 64 a batch (before)"
    base = len(texts) / np.median(t[before])
    best_base = len(texts) / min(t[before])
    for name, ts in t.items():
        rate, best = len(texts) / np.median(ts), len(texts) / min(ts)
        scorer = graphs.get(name.split(",")[0], eager)
        scores = scorer.score_texts(texts)
        diff = np.abs(scores - reference).max()
        rows.append(
            (
                "deberta-v3-small",
                f"2 threads: score_texts, {name}",
                f"{rate:.1f} pairs/s ({rate / base:.2f}x batched eager, best round "
                f"{best / best_base:.2f}x; {rate * naive_s:.1f}x naive; max |score diff| "
                f"{diff:.1e})",
            )
        )
    return rows


# --- accuracy guards on trained models --------------------------------------------------------


def guard_pets(folder: Path) -> Rows:
    from models.image_classifier.config import TrainConfig
    from models.image_classifier.train import train

    torch.set_num_threads(2)
    cfg = TrainConfig(
        data=DATA / "images" / "oxford-pets-sample" / "images",
        labels="filename",
        out=folder,
        arch="resnet18",
        pretrained=False,
        epochs=3,
        lr=2e-3,
        size=96,
        bs=32,
        workers=0,
        examples=0,
    )
    metrics = train(cfg)
    g = json.loads((folder / "metrics.json").read_text())["guards"]["onnx"]
    return [
        (
            "resnet18 (pets, 96 px)",
            "accuracy guard (top-1 agreement >= 99.5 %)",
            f"{g['top1_agreement']:.2%} of {g['images']} validation images, max |p diff| "
            f"{g['max_prob_diff']:.1e}: {'passed' if g['passed'] else 'FAILED'} "
            f"(model accuracy {metrics['accuracy']:.1%})",
        )
    ]


def guard_patent(folder: Path) -> Rows:
    from models.patent_similarity.config import TrainConfig
    from models.patent_similarity.train import train

    torch.set_num_threads(2)
    usppm = DATA / "usppm"
    cfg = TrainConfig(
        data=usppm / "train.csv",
        cpc=usppm / "cpc_titles.csv",
        out=folder / "model",
        base=str(usppm_base(folder / "base", usppm)),
        max_rows=8000,
        epochs=3,
        lr=1e-3,
        batch_size=32,
        seed=0,
    )
    metrics, _ = train(cfg)
    g = metrics["guards"]["onnx"]
    rows = []
    for p in ("int8", "fp32"):
        n = g[p]
        rows.append(
            (
                "small DeBERTa (patent pairs)",
                f"accuracy guard, {p}",
                f"correlation with PyTorch {n['correlation']:.5f}, Pearson shift "
                f"{n['pearson_shift']:+.5f}, max |score diff| {n['max_score_diff']:.4f}: "
                f"{'passed' if n['passed'] else 'failed'}",
            )
        )
    rows.append(
        (
            "small DeBERTa (patent pairs)",
            "shipped",
            f"{g['precision']} (Pearson {g['pearson_torch']:.4f} with PyTorch on {g['pairs']} "
            f"held-out pairs; TF-IDF baseline {metrics['baseline_pearson']:.4f})",
        )
    )
    return rows


def table(rows: Rows) -> str:
    lines = ["| model | measure | value |", "|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=30, help="classifier reps per measure")
    p.add_argument("--pairs", type=int, default=512, help="patent pairs scored per round")
    p.add_argument("--rounds", type=int, default=3, help="patent rounds per method")
    p.add_argument("--archs", nargs="*", default=["resnet18", "convnext_tiny"])
    p.add_argument("--no-guards", action="store_true", help="skip training the guard models")
    args = p.parse_args()
    rows: Rows = []
    started = time.time()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = photo(tmp)
        for arch in args.archs:
            rows += bench_classifier(arch, tmp / arch, image, args.reps)
        if (DATA / "usppm").is_dir():
            (tmp / "patent").mkdir()
            rows += bench_patent(tmp / "patent", args.pairs, args.rounds)
        if not args.no_guards and (DATA / "images").is_dir():
            rows += guard_pets(tmp / "pets-guard")
        if not args.no_guards and (DATA / "usppm").is_dir():
            rows += guard_patent(tmp / "patent-guard")
    load = os.getloadavg()
    print(
        f"\nCPU fast path, {os.cpu_count()} cores, load average {load[0]:.1f}, "
        f"{time.time() - started:.0f} s; p50 / p90 / min (ratios of p50 and of min to PyTorch "
        "eager)\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
