"""Evaluation: what a model gets right and wrong, in numbers and in pictures.

`predict_items` gives class probabilities for image files; `evaluate_predictions` turns them
into accuracy, loss, per-class accuracy, the most confused pairs, a confusion-matrix and a
top-losses PNG; `plot_history` draws the training curves. `evaluate` is the CLI's
`evaluate image-classifier`: a model (folder, Hub repo or the registry's) on labelled images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from models.image_classifier import NAME, SPEC
from models.image_classifier.config import EvalConfig
from models.image_classifier.data import (
    ImageDataset,
    describe_skips,
    find_items,
    split,
    verify_images,
)
from models.image_classifier.images import read_image
from models.image_classifier.predict import load
from shared import registry
from shared.errors import UserError


@torch.no_grad()
def predict_items(
    model: nn.Module, transform, paths: Sequence[Path], *, bs: int = 64, workers: int = 0
) -> torch.Tensor:
    """Class probabilities (N, C) for image files, in batches."""
    dl = torch.utils.data.DataLoader(
        ImageDataset(paths, [0] * len(paths), transform), batch_size=bs, num_workers=workers
    )
    dev = next(model.parameters()).device
    model.eval()
    out = [
        model(x.to(dev)).float().softmax(1).cpu() for x, _ in tqdm(dl, desc="predict", leave=False)
    ]
    return torch.cat(out)


def evaluate_predictions(
    probs: torch.Tensor,
    targets: Sequence[int],
    classes: list[str],
    paths: Sequence[Path],
    out: Path,
    *,
    top_losses: int = 9,
) -> dict[str, Any]:
    """Accuracy, loss, per-class accuracy; confusion-matrix and top-losses PNGs in `out`."""
    targets_t = torch.as_tensor(list(targets))
    preds = probs.argmax(1)
    losses = F.nll_loss(probs.clamp_min(1e-12).log(), targets_t, reduction="none")
    k = len(classes)
    cm = torch.bincount(targets_t * k + preds, minlength=k * k).reshape(k, k).numpy()
    per_class = {c: float(cm[i, i] / cm[i].sum()) for i, c in enumerate(classes) if cm[i].sum()}
    acc = float((preds == targets_t).float().mean())
    out.mkdir(parents=True, exist_ok=True)
    _plot_confusion(cm, classes, out / "confusion_matrix.png")
    order = losses.argsort(descending=True).tolist()
    wrong = [i for i in order if preds[i] != targets_t[i]][:top_losses] or order[:top_losses]
    _plot_top_losses(
        [
            (
                paths[i],
                classes[preds[i]],
                classes[targets_t[i]],
                float(losses[i]),
                float(probs[i, preds[i]]),
            )
            for i in wrong
        ],
        out / "top_losses.png",
    )
    confused = sorted(
        (
            (classes[i], classes[j], int(cm[i, j]))
            for i in range(k)
            for j in range(k)
            if i != j and cm[i, j]
        ),
        key=lambda t: -t[2],
    )[:10]
    return {
        "accuracy": acc,
        "error_rate": 1 - acc,
        "valid_loss": float(losses.mean()),
        "n_images": len(targets_t),
        "per_class_accuracy": per_class,
        "most_confused": [{"actual": a, "predicted": p, "count": c} for a, p, c in confused],
        "confusion_matrix": cm.tolist(),
    }


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate a model on labelled images; the full report goes to `cfg.out`/metrics.json.

    The model is `cfg.model` (a folder, a Hub repo id or repo@revision, downloading only the
    family's files), or the registry's pets classifier when it is None."""
    if cfg.model is None:
        folder = registry.fetch(NAME)
    else:
        folder = registry.resolve(cfg.model, SPEC.patterns(), name=NAME)
    clf = load(folder)
    items = find_items(cfg.data, **cfg.label_options())
    items = verify_images(items)
    if skips := describe_skips(items):
        tqdm.write(skips)
    idx = (
        split(items, cfg.valid_pct, cfg.seed)[1]
        if cfg.split == "valid"
        else list(range(len(items.paths)))
    )
    if not idx:
        raise UserError(f"No images to evaluate in {cfg.data}.")
    unknown = sorted({items.labels[i] for i in idx} - set(clf.labels))
    if unknown:
        raise UserError(f"The data has labels the model does not know: {', '.join(unknown[:10])}.")
    lookup = {c: i for i, c in enumerate(clf.labels)}
    paths = [items.paths[i] for i in idx]
    probs = predict_items(clf.model, clf.transform, paths, bs=cfg.bs, workers=cfg.workers)
    report = evaluate_predictions(
        probs, [lookup[items.labels[i]] for i in idx], clf.labels, paths, cfg.out
    )
    report["model"] = str(cfg.model if cfg.model is not None else folder)
    (cfg.out / "metrics.json").write_text(json.dumps(report, indent=2))
    return {k: report[k] for k in ("accuracy", "error_rate", "valid_loss", "n_images")} | {
        "report": str(cfg.out)
    }


# --- plots ------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_confusion(cm: np.ndarray, classes: list[str], path: Path) -> None:
    plt = _plt()
    k = len(classes)
    side = min(16, 2 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm, cmap="Blues")
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xlabel="predicted",
        ylabel="actual",
        title="Confusion matrix",
    )
    ax.set_xticklabels(classes, rotation=90, fontsize=8 if k > 12 else 10)
    ax.set_yticklabels(classes, fontsize=8 if k > 12 else 10)
    if k <= 40:
        for i in range(k):
            for j in range(k):
                color = "white" if cm[i, j] > cm.max() / 2 else "black"
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color=color,
                    fontsize=7 if k > 12 else 10,
                )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_top_losses(rows: list[tuple], path: Path) -> None:
    """The most confidently wrong images: where to look for mislabelled or odd data."""
    plt = _plt()
    n = len(rows)
    cols = min(3, n) or 1
    fig, axes = plt.subplots(
        math.ceil(n / cols) or 1, cols, figsize=(4 * cols, 4.3 * math.ceil(n / cols)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (p, pred, actual, loss, prob) in zip(axes.flat, rows, strict=False):
        image, _ = read_image(p)
        image.thumbnail((320, 320))
        ax.imshow(image)
        ax.set_title(f"{pred} / {actual}\nloss {loss:.2f}, p {prob:.2f}", fontsize=10)
    fig.suptitle("Top losses: predicted / actual, loss, probability of the prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_history(history: list[dict], path: Path) -> None:
    """Training curves: the loss of every batch (and smoothed) with the validation loss per
    epoch, and the validation error rate per epoch."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    steps, vx = [], []
    for r in history:
        start = len(steps)
        steps += r["step_losses"]
        vx.append(start + len(r["step_losses"]))
    a.plot(range(1, len(steps) + 1), steps, alpha=0.35, label="train (batch)")
    smooth = np.convolve(steps, np.ones(5) / 5, mode="valid") if len(steps) >= 5 else steps
    a.plot(range(len(steps) - len(smooth) + 1, len(steps) + 1), smooth, label="train (smoothed)")
    a.plot(vx, [r["valid_loss"] for r in history], "o-", label="valid")
    a.set(xlabel="batch", ylabel="loss", title="Loss")
    a.legend()
    b.plot([r["epoch"] for r in history], [r["error_rate"] for r in history], "o-")
    b.set(xlabel="epoch", ylabel="error rate", title="Validation error rate", ylim=(0, None))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
