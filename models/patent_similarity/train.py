"""Fine-tuning: a pretrained transformer becomes a regressor of the similarity score.

`train(TrainConfig)` reads the pairs, holds out whole anchors, fine-tunes with the transformers
`Trainer` (mixed precision on GPU) and writes a Hub-ready folder: safetensors weights, the
tokenizer, the CPC table, metrics.json, a training plot and a model card. What the predictor needs
to rebuild the input text (template, titles or codes, the split) is kept in the model's config.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)

from models.patent_similarity import NAME
from models.patent_similarity.config import TrainConfig
from models.patent_similarity.data import (
    GRID,
    MAX_CHARS,
    TEMPLATE,
    TITLES,
    baseline_pearson,
    clean,
    cpc_text,
    pearson,
    read_cpc,
    read_pairs,
    split_by_anchor,
)
from models.patent_similarity.onnx_export import describe, export_checked
from models.patent_similarity.sources import terms
from shared import device as devices
from shared import runtime


def _base_model(base: str, config: AutoConfig) -> PreTrainedModel:
    """The pretrained model, or random weights when `base` is a folder with a config only."""
    folder = Path(base)
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    if folder.is_dir() and not has_weights:
        print(f"note: {base} holds no weights; starting from random weights")
        return AutoModelForSequenceClassification.from_config(config)
    # safetensors only: for a repo that still has a pickle only (microsoft/deberta-v3-small),
    # transformers takes the safetensors of its conversion pull request
    return AutoModelForSequenceClassification.from_pretrained(
        base, config=config, use_safetensors=True
    )


def _examples(tokenizer, texts: list[str], scores: Sequence[float]) -> list[dict]:
    enc = tokenizer(texts, truncation=True, max_length=min(tokenizer.model_max_length, 512))
    keys = list(enc.keys())
    return [{**{k: enc[k][i] for k in keys}, "labels": float(s)} for i, s in enumerate(scores)]


def train(cfg: TrainConfig) -> tuple[dict, list[dict]]:
    """Fine-tune `cfg.base` as a regressor; write the model folder to `cfg.out`; return (metrics,
    log). `cfg.push_to_hub` only names the repo in the card's usage example (the CLI pushes)."""
    out = Path(cfg.out)
    df = read_pairs(cfg.data)
    titles = read_cpc(cfg.cpc)
    if cfg.max_rows and cfg.max_rows < len(df):
        df = df.sample(n=cfg.max_rows, random_state=cfg.seed).reset_index(drop=True)
    if cfg.use_cpc_titles and (unknown := sorted(set(df.context) - set(titles))):
        print(
            f"note: {len(unknown)} context code(s) have no title, the code is used: {unknown[:5]}"
        )
    train_idx, valid_idx = split_by_anchor(df.anchor.tolist(), cfg.valid_frac, cfg.seed)
    tr, va = df.iloc[train_idx], df.iloc[valid_idx]
    print(
        f"{len(tr)} training rows, {len(va)} validation rows; "
        f"{va.anchor.nunique()} of {df.anchor.nunique()} anchors held out"
    )
    base_r = baseline_pearson(tr, va)
    print(f"baseline (char n-gram TF-IDF cosine) Pearson on validation: {base_r:.4f}")

    def texts(part: pd.DataFrame) -> list[str]:
        return [
            TEMPLATE.format(
                context=cpc_text(c, titles, cfg.use_cpc_titles), target=clean(t), anchor=clean(a)
            )
            for a, t, c in zip(part.anchor, part.target, part.context, strict=True)
        ]

    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    config = AutoConfig.from_pretrained(
        cfg.base,
        num_labels=1,
        problem_type="regression",
        id2label={0: "similarity"},
        label2id={"similarity": 0},
    )
    model = _base_model(cfg.base, config)
    train_set = _examples(tokenizer, texts(tr), tr.score)
    valid_set = _examples(tokenizer, texts(va), va.score)

    def compute_metrics(p) -> dict:
        preds = np.clip(np.asarray(p.predictions).reshape(-1), 0, 1)
        return {"pearson": pearson(preds, p.label_ids)}

    dev = devices.device()
    half = devices.dtype(dev)
    steps = math.ceil(len(train_set) / cfg.batch_size) * cfg.epochs
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            learning_rate=cfg.lr,
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size * 2,
            num_train_epochs=cfg.epochs,
            lr_scheduler_type="cosine",
            warmup_steps=cfg.warmup,  # a float below 1 is a fraction of all steps
            weight_decay=cfg.weight_decay,
            bf16=dev.type == "cuda" and half == torch.bfloat16,
            fp16=dev.type == "cuda" and half == torch.float16,
            use_cpu=dev.type == "cpu",
            eval_strategy="epoch",
            save_strategy="no",
            logging_steps=max(1, int(steps // 40)),
            report_to="none",
            seed=cfg.seed,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=valid_set,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
        )
        trainer.train()
        final = trainer.evaluate()
        preds = np.clip(trainer.predict(valid_set).predictions.reshape(-1), 0, 1)
    log = trainer.state.log_history
    losses = [h["loss"] for h in log if "loss" in h]

    metrics = {
        "pearson": round(final["eval_pearson"], 4),
        "baseline_pearson": round(base_r, 4),
        "valid_loss": round(final["eval_loss"], 4),
        "train_loss": round(losses[-1], 4) if losses else None,
        "train_rows": len(tr),
        "valid_rows": len(va),
        "valid_anchors": int(va.anchor.nunique()),
        "anchors": int(df.anchor.nunique()),
    }
    # What the predictor needs to build the same input text, kept in the model's config.
    model.config.input_template = TEMPLATE
    model.config.use_cpc_titles = cfg.use_cpc_titles
    model.config.max_chars = MAX_CHARS
    model.config.cpc_contexts = sorted(set(df.context))
    model.config.split = {"by": "anchor", "valid_frac": cfg.valid_frac, "seed": cfg.seed}
    out.mkdir(parents=True, exist_ok=True)
    trainer.model.to("cpu").float().save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    (out / TITLES).write_text(json.dumps(titles, indent=1, ensure_ascii=False))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cfg.onnx:  # the CPU fast path, shipped only if it passes its accuracy guard
        ship = partial(export_checked, trainer.model, tokenizer, out, texts(va), va.score)
        if guard := runtime.exporting(out, ship, what=NAME):
            metrics["guards"] = {"onnx": guard}
            print(describe(guard))
    _plot(log, va.score.to_numpy(), preds, base_r, out / "training.png")
    _card(out, metrics, cfg)
    return metrics, log


def _plot(
    log: list[dict], truth: np.ndarray, preds: np.ndarray, baseline: float, path: Path
) -> None:
    """Loss curves, Pearson per epoch against the baseline, predictions against the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    steps = [(h["step"], h["loss"]) for h in log if "loss" in h]
    evals = {
        h["epoch"]: (h["step"], h["eval_loss"], h["eval_pearson"])
        for h in log
        if "eval_pearson" in h
    }
    if steps:
        ax1.plot(*zip(*steps, strict=True), label="training")
    if evals:
        s, loss, r = zip(*evals.values(), strict=True)
        ax1.plot(s, loss, "o-", label="validation")
        ax2.plot(list(evals), r, "o-", label="model")
    ax1.set(xlabel="step", ylabel="MSE loss", title="Loss")
    ax1.legend()
    ax2.axhline(baseline, color="tab:gray", linestyle="--", label="TF-IDF baseline")
    ax2.set(xlabel="epoch", ylabel="Pearson", title="Validation Pearson (held-out anchors)")
    ax2.legend()
    grid = [g for g in sorted(GRID) if np.isclose(truth, g).any()]
    ax3.boxplot([preds[np.isclose(truth, g)] for g in grid], tick_labels=[str(g) for g in grid])
    ax3.set(
        xlabel="true score",
        ylabel="predicted score",
        title=f"Validation predictions, Pearson {pearson(preds, truth):.3f}",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _card(out: Path, metrics: dict, cfg: TrainConfig) -> None:
    """The model card (README.md): how it was trained and validated, and how to use it."""
    from shared import hub

    base = cfg.base
    on_hub = not Path(base).exists()
    context = "its CPC title (lower case)" if cfg.use_cpc_titles else "its CPC code"
    training = f"""Fine-tuned from `{base}` as a regressor (`num_labels=1`, MSE loss) with the
transformers `Trainer`: learning rate {cfg.lr}, batch size {cfg.batch_size},
{cfg.epochs:g} epochs, cosine schedule with {cfg.warmup:.0%} warm-up, weight decay
{cfg.weight_decay}, mixed precision on GPU.

Each pair becomes one text: `{TEMPLATE}`, where the context is {context}.

**Validation protocol.** The split is grouped by anchor: every anchor's rows go to one side, chosen
by a seeded hash of the anchor (seed {cfg.seed}, {cfg.valid_frac:.0%} of anchors held out), so no
anchor is in both training and validation. {metrics["valid_anchors"]} of {metrics["anchors"]}
anchors ({metrics["valid_rows"]} rows) were held out; {metrics["train_rows"]} rows trained the
model. Pearson correlation on the held-out anchors: **{metrics["pearson"]:.4f}**. A simple baseline,
the cosine similarity of character n-gram TF-IDF vectors of anchor and target, gets
{metrics["baseline_pearson"]:.4f} on the same rows. Predictions are clipped to [0, 1].

![training curves and validation predictions](training.png)

Scores follow the competition's grid: 1.0 very close match, 0.75 close synonym, 0.5 synonym with
different breadth (hyponym/hypernym), 0.25 somewhat related, 0 unrelated."""
    example = "furniture; domestic articles or appliances; ..." if cfg.use_cpc_titles else "A47"
    usage = f"""from transformers import AutoModelForSequenceClassification, AutoTokenizer

repo = "{cfg.push_to_hub or "YOUR/REPO"}"
model = AutoModelForSequenceClassification.from_pretrained(repo)
tokenizer = AutoTokenizer.from_pretrained(repo)
text = model.config.input_template.format(
    context="{example}", target="sofa bed", anchor="convertible couch"
)
score = model(**tokenizer(text, return_tensors="pt")).logits.item()  # 0 unrelated .. 1 same"""
    hub.write_card(
        out,
        title="Patent phrase similarity (cross-encoder)",
        summary=(
            "Scores how similar two patent phrases are within a CPC context (0 = unrelated, "
            "1 = very close match), trained on the U.S. Patent Phrase to Phrase Matching data "
            "as in lesson 4 of fast.ai's Practical Deep Learning course."
        ),
        base_model=base if on_hub else None,
        tags=("patents", "sentence-similarity", "cross-encoder", "regression"),
        library_name="transformers",
        pipeline_tag="text-classification",
        metrics={"pearson": metrics["pearson"]},
        task_name="Patent phrase similarity",
        **terms(Path(cfg.data), base),
        dataset_name="U.S. Patent Phrase to Phrase Matching (held-out anchors)",
        training=training,
        usage=usage,
    )
