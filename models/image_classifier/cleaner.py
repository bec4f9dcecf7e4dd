"""What the builder's page shows, as plain data: the photo galleries with their selection
(fastai's `ImageClassifierCleaner`: a category's photos, or the top losses) and the live view
of a training run (the epoch table and the loss curve). Torch-free, gradio-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.image_classifier.workspace import Workspace

Gallery = tuple[list[tuple[str, str]], list[str]]  # (thumbnail, caption) items, photo ids


def category(ws: Workspace, label: str | None, selected=()) -> Gallery:
    """The photos of `label`, the selected ones marked."""
    photos = ws.photos(label) if label else []
    items = [(str(ws.thumb(p)), "✓ selected" if p.stem in selected else "") for p in photos]
    return items, [p.stem for p in photos]


def top_losses(ws: Workspace, review: dict | None, selected=()) -> Gallery:
    """The photos the model got most wrong (still there), captioned actual → predicted."""
    items, ids = [], []
    for r in (review or {}).get("top_losses", []):
        if (photo := ws.find(r["id"])) is None:
            continue
        mark = "✓ selected · " if r["id"] in selected else ""
        text = f"{mark}{photo.parent.name} → {r['predicted']} ({r['p']:.0%}), loss {r['loss']:.2f}"
        items.append((str(ws.thumb(photo)), text))
        ids.append(r["id"])
    return items, ids


def toggle(ids: list[str], selected: list[str], index: int) -> list[str]:
    """A click selects a photo, a second click unselects it."""
    photo = ids[index] if 0 <= index < len(ids) else None
    if photo is None:
        return selected
    return [s for s in selected if s != photo] if photo in selected else [*selected, photo]


HEADERS = ["epoch", "phase", "train loss", "valid loss", "error rate", "time"]


@dataclass
class RunView:
    """A training run as the page shows it: the epoch table and the loss curve's points."""

    rows: list[list] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)

    def step(self, info: dict) -> str:
        self.points.append({"step": len(self.points) + 1, "loss": info["loss"], "series": "train"})
        return f"🏋️ Epoch {info['epoch']}, batch {info['batch']}/{info['batches']}"

    def epoch(self, r: dict) -> str:
        self.rows.append(
            [r["epoch"], r["phase"], round(r["train_loss"], 4), round(r["valid_loss"], 4)]
            + [round(r["error_rate"], 4), f"{r['seconds']:.0f} s"]
        )
        self.points.append({"step": len(self.points), "loss": r["valid_loss"], "series": "valid"})
        return f"🏋️ Epoch {r['epoch']} done ({r['phase']}): error rate {r['error_rate']:.1%}."

    @staticmethod
    def done(review: dict) -> tuple[str, list[list]]:
        """The closing line and the per-category accuracy rows."""
        m = review["metrics"]
        text = (
            f"✅ Trained: validation accuracy **{m['accuracy']:.1%}** on {m['n_images']} "
            "photos. Look at what it gets wrong below, clean, and retrain."
        )
        return text, [[c, f"{a:.0%}"] for c, a in review["per_class"].items()]
