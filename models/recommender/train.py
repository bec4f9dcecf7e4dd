"""Training and evaluation: AdamW + one-cycle with weight decay, RMSE per epoch.

`train` turns a `Recipe` and the `Data` into a `Trained` model (ids, history, metrics);
`fit` is its loop; `predict` and `scores` measure; `cross_validate` gives k-fold means;
`plot_history` draws the training curve.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from models.recommender.config import OPTIMIZERS, Recipe
from models.recommender.data import Data, encode, item_features, sorted_ids
from models.recommender.modules import Y_RANGE, DotProductBias, ItemFeatures, Rated, build
from shared.errors import UserError


@torch.no_grad()
def predict(model: nn.Module, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Predicted ratings for (user index, item index) pairs."""
    model.eval()
    out = [
        model(torch.tensor(users[s : s + 65536]), torch.tensor(items[s : s + 65536]))
        for s in range(0, len(users), 65536)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = pred - truth
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def fit(
    model: nn.Module,
    train: tuple,
    valid: tuple | None,
    recipe: Recipe,
    *,
    features: ItemFeatures | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """AdamW + one-cycle on (users, items, ratings) arrays; returns one dict per epoch.
    `features`: the movies' side features (DotProductBias only), baked in at the end."""
    # Small ops: one thread is as fast as two on an idle CPU and far faster on a busy one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(model, train, valid, recipe, features, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(model, train, valid, recipe: Recipe, features: ItemFeatures | None, progress: bool):
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    users, items, ratings = (torch.tensor(a) for a in train)
    decay = {"bias": recipe.bias_wd, "implicit": recipe.implicit_wd}
    groups: dict[float, list] = {}
    named = [*model.named_parameters(), *(features.named_parameters() if features else [])]
    for name, p in named:  # feature embeddings decay like the factors, their biases like biases
        wd = next((v for k, v in decay.items() if k in name), recipe.wd)
        groups.setdefault(wd, []).append(p)
    groups = [{"params": ps, "weight_decay": wd} for wd, ps in groups.items()]
    rated = None
    if getattr(model, "item_implicit", None) is not None:
        n_users, n_items = model.user_factors.num_embeddings, model.item_factors.num_embeddings
        rated = Rated(train[0], train[1], n_users, n_items)
    settings = OPTIMIZERS[recipe.optimizer]
    opt = torch.optim.AdamW(groups, lr=recipe.lr, betas=settings["betas"], eps=settings["eps"])
    steps = math.ceil(len(ratings) / recipe.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        recipe.lr,
        total_steps=recipe.epochs * steps,
        pct_start=settings["pct_start"],
        final_div_factor=settings["final_div_factor"],
    )
    history = []
    bar = tqdm(range(recipe.epochs), desc=f"train {recipe.model}", disable=not progress)
    for epoch in bar:
        model.train()
        total = 0.0
        for idx in torch.randperm(len(ratings), generator=gen).split(recipe.bs):
            if rated is not None:
                model.offset = model.implicit_offsets(rated)
            if features is not None:
                model.item_offset = features()
            loss = F.mse_loss(model(users[idx], items[idx]), ratings[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch + 1, "train_rmse": math.sqrt(total / len(ratings))}
        with torch.no_grad():
            if rated is not None:
                model.offset = model.implicit_offsets(rated)
            if features is not None:
                model.item_offset = features()
        if valid is not None and len(valid[2]):
            m = scores(predict(model, valid[0], valid[1]), valid[2])
            row.update(valid_rmse=m["rmse"], valid_mae=m["mae"])
        history.append(row)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"})
    if rated is not None:
        model.bake(rated)
    if features is not None:
        model.bake_items(features)
    model.eval()
    return history


@dataclass
class Trained:
    model: nn.Module
    users: list[str]
    items: list[str]
    data: Data
    history: list[dict[str, float]]
    metrics: dict[str, float]
    seconds: float


def train(recipe: Recipe, data: Data, *, progress: bool = True) -> Trained:
    """Train `recipe` on `data.train`; measure RMSE/MAE on `data.valid`."""
    both = pd.concat([data.train, data.valid])
    # Like fast.ai, every id of the data gets an embedding; ids only in valid stay near the
    # mean through weight decay.
    users, items = sorted_ids(both["user"]), sorted_ids(both["item"])
    uix, iix = {u: n for n, u in enumerate(users)}, {i: n for n, i in enumerate(items)}
    tr, va = encode(data.train, uix, iix), encode(data.valid, uix, iix)
    if not len(tr[2]):
        raise UserError("No training ratings.")
    lo, hi = float(tr[2].min()), float(tr[2].max())
    y_range = Y_RANGE if (lo >= 0.5 and hi <= 5) else (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    model = build(recipe, len(users), len(items), y_range)
    features = None
    if recipe.features and isinstance(model, DotProductBias):
        found = item_features(data.items.reindex(items))
        features = None if found is None else ItemFeatures(found, recipe.factors)
    start = time.perf_counter()
    history = fit(model, tr, va, recipe, features=features, progress=progress)
    seconds = time.perf_counter() - start
    metrics = {
        "train_rmse": scores(predict(model, tr[0], tr[1]), tr[2])["rmse"],
        "train_seconds": round(seconds, 2),
    }
    if len(va[2]):
        m = scores(predict(model, va[0], va[1]), va[2])
        metrics.update(valid_rmse=m["rmse"], valid_mse=m["rmse"] ** 2, valid_mae=m["mae"])
    return Trained(model, users, items, data, history, metrics, seconds)


def cross_validate(
    recipe: Recipe, ratings: pd.DataFrame, items: pd.DataFrame, folds: int = 5
) -> dict[str, float]:
    """k-fold means (and spreads) of RMSE and MAE: each rating is in exactly one valid fold."""
    if folds < 2:
        raise UserError("--folds must be at least 2.")
    order = np.random.default_rng(recipe.seed).permutation(len(ratings))
    results = []
    for k, part in enumerate(np.array_split(order, folds)):
        valid = ratings.iloc[part]
        train_ = ratings.drop(ratings.index[part])
        t = train(recipe, Data(train_, valid, items), progress=False)
        results.append((t.metrics["valid_rmse"], t.metrics["valid_mae"]))
        print(f"fold {k + 1}/{folds}: rmse {results[-1][0]:.4f}  mae {results[-1][1]:.4f}")
    rmse, mae = np.array(results).T
    return {
        "folds": folds,
        "rmse_mean": float(rmse.mean()),
        "rmse_std": float(rmse.std()),
        "mae_mean": float(mae.mean()),
        "mae_std": float(mae.std()),
    }


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """The training curve (RMSE per epoch) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(epochs, [h["train_rmse"] for h in history], label="train")
    if "valid_rmse" in history[0]:
        ax.plot(epochs, [h["valid_rmse"] for h in history], label="valid")
        best = min(history, key=lambda h: h["valid_rmse"])
        ax.annotate(f"{best['valid_rmse']:.3f}", (best["epoch"], best["valid_rmse"]),
                    textcoords="offset points", xytext=(0, -14), ha="center")  # fmt: skip
    ax.set(xlabel="epoch", ylabel="RMSE (stars)", title="Training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
