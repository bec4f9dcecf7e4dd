"""Benchmark: pairs/s of the patent similarity predictor against two common ways to score pairs.

    .venv/bin/python bench/patent_similarity.py [--pairs 2000] [--threads N] [--codes]

On 2,000 pairs drawn from the real data ($DEMO_DATA/usppm, default ../shared/data), with the full
deberta-v3-small architecture (its real config: 6 layers, hidden 768, vocabulary 128,100) and
random weights, in one run:

- ours: `Predictor.score_texts` (one tokenizer call, batches of similar length padded per batch,
  `torch.inference_mode`);
- naive: a Python loop scoring one pair at a time (`tokenizer(text)`, `model(**enc)`);
- pipeline: transformers' `pipeline("text-classification")` on the same texts, with its default
  batch size (1) and with our batch size.

A WordPiece tokenizer trained on the data (tests/factories.py) stands in for deberta's (the
vocabulary size only changes the embedding lookup). The scores of all methods are checked to
agree. Goal: >= 3x naive and >= 1.5x pipeline. It also prints the character n-gram TF-IDF
baseline's Pearson on held-out anchors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from models.patent_similarity import data  # noqa: E402
from models.patent_similarity.predict import Predictor  # noqa: E402
from tests.factories import DEBERTA_V3_SMALL, wordpiece  # noqa: E402

DATA = Path(os.environ.get("DEMO_DATA", ROOT.parent / "shared" / "data")) / "usppm"


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, np.asarray(out, dtype=np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--codes", action="store_true", help="CPC codes as context, not titles")
    args = p.parse_args()
    if not (DATA / "train.csv").is_file():
        sys.exit(f"No data at {DATA} (set DEMO_DATA to the folder holding usppm/)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification, DebertaV2Config, pipeline

    df = data.read_pairs(DATA / "train.csv")
    titles = data.read_cpc(DATA / "cpc_titles.csv")

    # The course's rule: know what a simple baseline gets, on the same held-out anchors.
    tr, va = data.split_by_anchor(df.anchor.tolist(), 0.25, seed=42)
    baseline = data.baseline_pearson(df.iloc[tr], df.iloc[va])

    sample = df.sample(n=args.pairs, random_state=0)
    tokenizer = wordpiece(
        pd.concat([df.anchor, df.target]).tolist() + [t.lower() for t in titles.values()],
        vocab_size=8000,
        max_length=512,
    )
    torch.manual_seed(0)
    config = DebertaV2Config(**DEBERTA_V3_SMALL, num_labels=1, problem_type="regression")
    config.use_cpc_titles = not args.codes
    model = AutoModelForSequenceClassification.from_config(config).eval()
    predictor = Predictor(model, tokenizer, titles)
    predictor.batch_size = args.batch_size
    texts = [
        predictor.text(a, t, c)[0] for a, t, c in sample[["anchor", "target", "context"]].values
    ]
    lengths = [len(x) for x in tokenizer(texts)["input_ids"]]
    print(
        f"{len(texts)} pairs, {np.mean(lengths):.1f} tokens on average (max {max(lengths)}), "
        f"context as {'codes' if args.codes else 'titles'}, {torch.get_num_threads()} thread(s), "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters"
    )

    def naive() -> list[float]:
        out = []
        with torch.no_grad():
            for text in texts:
                out.append(model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item())
        return out

    pipe = pipeline(
        "text-classification",
        model=model,
        tokenizer=tokenizer,
        device="cpu",
        function_to_apply="none",
    )

    def piped(batch_size: int | None) -> list[float]:
        kwargs = {"batch_size": batch_size} if batch_size else {}
        return [r["score"] for r in pipe(texts, **kwargs)]

    methods = {
        "ours (sorted batches)": lambda: predictor.score_texts(texts),
        "naive loop, 1 pair at a time": naive,
        "pipeline (default batch size)": lambda: piped(None),
        f"pipeline (batch_size={args.batch_size})": lambda: piped(args.batch_size),
    }
    # Warm up allocator and kernels, for every method alike.
    predictor.score_texts(texts[:16])
    pipe(texts[:16], batch_size=args.batch_size)

    results, reference = {}, None
    for name, fn in methods.items():
        seconds, scores = timed(fn)
        results[name] = seconds
        scores = np.clip(scores, 0, 1)
        reference = scores if reference is None else reference  # ours come first
        diff = np.abs(scores - reference).max()
        print(f"  {name:<32} {seconds:7.1f} s   max |score - ours| {diff:.1e}")
        assert diff < 1e-3, f"{name} disagrees with our scores"

    # Tokens each method pushes through the model, padding included: what sorting saves.
    bs = args.batch_size
    ordered = np.sort(lengths)
    padded = {
        "ours (sorted batches)": sum(
            ordered[i : i + bs].max() * len(ordered[i : i + bs]) for i in range(0, len(ordered), bs)
        ),
        "naive loop, 1 pair at a time": sum(lengths),
        "pipeline (default batch size)": sum(lengths),
        f"pipeline (batch_size={bs})": sum(
            max(lengths[i : i + bs]) * len(lengths[i : i + bs]) for i in range(0, len(lengths), bs)
        ),
    }
    ours = results["ours (sorted batches)"]
    print("\n| method | seconds | pairs/s | tokens computed | ours is x faster |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in results.items():
        print(
            f"| {name} | {seconds:.1f} | {len(texts) / seconds:.1f} | {padded[name]:,} "
            f"| {seconds / ours:.2f} |"
        )
    naive_x = results["naive loop, 1 pair at a time"] / ours
    pipe_x = results["pipeline (default batch size)"] / ours
    pipe_bs_x = results[f"pipeline (batch_size={bs})"] / ours
    print(
        f"\nGoal >= 3x the naive loop: {naive_x:.2f}x. Goal >= 1.5x the pipeline: {pipe_x:.2f}x at "
        f"its default batch size, {pipe_bs_x:.2f}x at batch size {bs}."
    )
    print(
        f"Baseline (char n-gram TF-IDF cosine) Pearson on held-out anchors of the real data: "
        f"{baseline:.4f} ({len(va):,} rows, {df.anchor.iloc[va].nunique()} anchors)"
    )


if __name__ == "__main__":
    main()
