"""After a training run: what the model gets wrong, to look at and clean (lesson 2).

`review` runs the new model over every photo of the session: the validation photos (the same
seeded split as training) give the confusion matrix and per-class accuracy, and all photos,
sorted by loss, give the top losses: the photos most likely mislabelled or ambiguous, which
the visitor can then remove or move (fastai's `ImageClassifierCleaner`). Plain data out.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from models.image_classifier.data import find_items, split
from models.image_classifier.evaluate import evaluate_predictions, predict_items
from models.image_classifier.predict import load
from models.image_classifier.train import Stopped

TOP = 24  # photos in the top-losses gallery


def review(photos: Path, model: Path, valid_pct: float, stop: threading.Event | None = None):
    """{"metrics", "per_class", "confusion" (PNG path), "classes", "top_losses": [{"id",
    "label", "predicted", "p", "loss", "valid"}]} of the model in `model` on `photos`."""
    clf = load(model)
    items = find_items(photos, labels="folder")
    _, valid_idx = split(items, valid_pct, seed=42)  # the split training made (same seed)
    if stop is not None and stop.is_set():
        raise Stopped
    probs = predict_items(clf.model, clf.transform, items.paths, bs=32)
    lookup = {c: i for i, c in enumerate(clf.labels)}
    targets = [lookup[label] for label in items.labels]
    valid = set(valid_idx)
    report = evaluate_predictions(
        probs[valid_idx],
        [targets[i] for i in valid_idx],
        clf.labels,
        [items.paths[i] for i in valid_idx],
        model,
    )
    losses = F.nll_loss(probs.clamp_min(1e-12).log(), torch.as_tensor(targets), reduction="none")
    order = losses.argsort(descending=True).tolist()[:TOP]
    top = [
        {
            "id": items.paths[i].stem,
            "label": items.labels[i],
            "predicted": clf.labels[int(probs[i].argmax())],
            "p": float(probs[i].max()),
            "loss": float(losses[i]),
            "valid": i in valid,
        }
        for i in order
    ]
    metrics = {k: report[k] for k in ("accuracy", "error_rate", "valid_loss", "n_images")}
    out: dict[str, Any] = {
        "metrics": metrics,
        "per_class": report["per_class_accuracy"],
        "confusion_matrix": report["confusion_matrix"],
        "classes": clf.labels,
        "confusion": str(model / "confusion_matrix.png"),
        "top_losses": top,
    }
    return out
