"""The learning-rate finder: Leslie Smith's range test, as fastai's `lr_find`.

`lr_find` trains on batches at an exponentially growing learning rate and records the smoothed
loss until it explodes; `suggest_lr` reads fastai's three suggestions off the curve; the plot
shows the curve and the suggestions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models.image_classifier.config import TrainConfig
from models.image_classifier.train import freeze, mixed_precision, param_groups, prepare
from shared.errors import UserError


def lr_find(
    cfg: TrainConfig,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    num_it: int = 100,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Raise the learning rate exponentially batch by batch from `start` to `end`, on the model
    as `train(cfg)` starts it; record the smoothed loss, stop when it explodes.
    Returns suggested learning rates and writes the loss-vs-LR plot (`cfg.out`/lr_find.png)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=mixed_precision())
    set_seed(cfg.seed)
    s = prepare(cfg)
    if cfg.freeze_epochs:
        freeze(s.model)  # the learner as fine_tune starts it
    dl = s.loader(s.train_idx, train=True, bs=cfg.bs, workers=cfg.workers)
    groups = param_groups(s.model, lr=start, lr_mult=1, wd=cfg.wd, frozen=True)
    opt = torch.optim.AdamW(groups, lr=start)
    model, opt, dl = accelerator.prepare(s.model, opt, dl)
    model.train()
    lrs, losses, avg, best = [], [], 0.0, math.inf
    batches = iter(dl)
    for i in tqdm(range(num_it), desc="lr_find", leave=False):
        lr = start * (end / start) ** (i / (num_it - 1))
        for g in opt.param_groups:
            g["lr"] = lr
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(dl)
            x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        accelerator.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
        avg = 0.98 * avg + 0.02 * loss.item()
        smooth = avg / (1 - 0.98 ** (i + 1))
        if not math.isfinite(smooth) or (i > 10 and smooth > 4 * best):
            break
        best = min(best, smooth)
        lrs.append(lr)
        losses.append(smooth)
    if len(lrs) < 5:
        raise UserError("The loss exploded at once: lower the start of the range test.")
    result = suggest_lr(lrs, losses)
    plot = plot or cfg.out / "lr_find.png"
    _plot_lr_find(lrs, losses, result, plot)
    return {**result, "plot": str(plot)}


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float]:
    """fastai's suggestions: 'valley' (the default: in the longest stretch where the loss falls,
    a point 1/2 of the way down), 'minimum' (a tenth of the LR with the lowest loss), and
    'steep' (the steepest descent)."""
    n = len(losses)
    run = [1] * n  # longest decreasing run of losses ending at each point
    start_i = end_i = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end_i] < run[i]:
            end_i, start_i = i, i - run[i]
    third = (end_i - start_i) / 3
    valley = lrs[min(n - 1, start_i + int(third) + int(third / 2))]
    minimum = lrs[int(np.argmin(losses))] / 10
    slopes = np.gradient(np.asarray(losses), np.log(np.asarray(lrs)))
    steep = lrs[int(np.argmin(slopes))]
    return {"valley": float(valley), "minimum": float(minimum), "steep": float(steep)}


def _plot_lr_find(lrs, losses, result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    for (name, lr), marker in zip(result.items(), "ovs", strict=False):
        ax.plot(lr, np.interp(np.log(lr), np.log(lrs), losses), marker, label=f"{name}: {lr:.1e}")
    ax.set(
        xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="Learning rate finder"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
